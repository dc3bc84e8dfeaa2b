"""`cellfed pki` end to end through click, and every refusal of fedrpc.tls_files.load_tls_files naming
its file: missing, unreadable mode, mismatched key, another federation, expired, wrong role."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cellapi.auth.pki_cli import pki_group
from fedlib.errors import ConfigError, PermissionDenied
from fedlib.pki import certs
from fedlib.pki.identity import Identity, RegionIdentity, Role
from fedlib.pki.verify import verify_chain, verify_peer_chain
from fedrpc.tls_files import load_tls_files

STEM = "par1-router-r1"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(pki_group, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _ca(tmp_path: Path, federation: str = "acme") -> Path:
    directory = tmp_path / federation
    _cli("init", "--dir", str(directory), "--federation", federation)
    _cli("issue", "region", "--dir", str(directory), "--region", "eu")
    return directory


def _leaf(directory: Path, role: str = "router", *extra: str) -> Path:
    _cli("issue", "leaf", "--dir", str(directory), "--region", "eu", "--site", "par1", "--role", role,
         "--id", "r1", *extra)  # fmt: skip
    return directory / "issued"


def _load(issued: Path, stem: str = STEM, **kwargs: object) -> object:
    return load_tls_files(
        issued / f"{stem}.chain.pem",
        issued / f"{stem}.key",
        issued / "ca.crt",
        "acme",
        **kwargs,  # type: ignore[arg-type]
    )


def test_init_issue_and_load(tmp_path: Path) -> None:
    directory = _ca(tmp_path)
    issued = _leaf(directory)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    for key in (directory / "root.key", directory / "regions/eu.key", issued / f"{STEM}.key"):
        assert os.stat(key).st_mode & 0o777 == 0o600
    material = load_tls_files(
        issued / f"{STEM}.chain.pem", issued / f"{STEM}.key", issued / "ca.crt", "acme", Role.ROUTER
    )
    assert material.identity == Identity("acme", "par1", Role.ROUTER, "r1")
    leaf = x509.load_pem_x509_certificate((issued / f"{STEM}.crt").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # Its role's name at its site first (what a client dialing a par1 router verifies), then the defaults.
    assert san.get_values_for_type(x509.DNSName) == ["router.par1.acme", "localhost"]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=72, minutes=5)
    now = datetime.now(UTC)
    peer = verify_peer_chain((issued / f"{STEM}.crt").read_bytes(), (directory / "ca.crt").read_bytes()
                             + (directory / "regions/eu.crt").read_bytes(), now)  # fmt: skip
    assert peer == material.identity


def test_reissue_replaces_the_leaf_and_show_prints_it(tmp_path: Path) -> None:
    directory = _ca(tmp_path)
    first = (_leaf(directory) / f"{STEM}.crt").read_bytes()
    issued = _leaf(directory, "router", "--dns", "r1.par1.example", "--hours", "1")
    assert (issued / f"{STEM}.crt").read_bytes() != first
    out = _cli("show", str(issued / f"{STEM}.chain.pem"))
    assert "spiffe://acme/site/par1/role/router/id/r1" in out and "r1.par1.example" in out
    assert "spiffe://acme/region/eu" in out and "days left" in out


def test_an_operator_gets_no_host_names(tmp_path: Path) -> None:
    issued = _leaf(_ca(tmp_path), "operator")
    leaf = x509.load_pem_x509_certificate((issued / "par1-operator-r1.crt").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [] and san.get_values_for_type(x509.IPAddress) == []


def test_issue_refuses_a_readable_ca_key(tmp_path: Path) -> None:
    directory = _ca(tmp_path)
    os.chmod(directory / "regions/eu.key", 0o640)
    result = CliRunner().invoke(pki_group, ["issue", "leaf", "--dir", str(directory), "--region", "eu",
                                            "--site", "par1", "--role", "cell", "--id", "c1"])  # fmt: skip
    assert result.exit_code != 0 and f"chmod 600 {directory / 'regions/eu.key'}" in result.output


def test_init_refuses_an_existing_root(tmp_path: Path) -> None:
    directory = _ca(tmp_path)
    result = CliRunner().invoke(pki_group, ["init", "--dir", str(directory), "--federation", "acme"])
    assert result.exit_code != 0 and "already holds a root CA" in result.output


def test_a_leaf_longer_than_30_days_is_refused(tmp_path: Path) -> None:
    directory = _ca(tmp_path)
    args = ["issue", "leaf", "--dir", str(directory), "--region", "eu", "--site", "par1", "--role", "cell"]
    result = CliRunner().invoke(pki_group, [*args, "--id", "c1", "--hours", "721"])
    assert result.exit_code != 0 and "hours" in result.output


def test_refusals_name_the_file(tmp_path: Path) -> None:
    issued = _leaf(_ca(tmp_path))
    key = issued / f"{STEM}.key"
    with pytest.raises(ConfigError, match="does not exist"):
        load_tls_files(issued / "nope.pem", key, issued / "ca.crt", "acme")
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {key}"):
        _load(issued)
    os.chmod(key, 0o600)
    with pytest.raises(ConfigError, match="expected a cell's") as err:
        _load(issued, expect_role=Role.CELL)
    assert str(issued / f"{STEM}.chain.pem") in err.value.message
    with pytest.raises(ConfigError, match="expected 'other'"):
        load_tls_files(issued / f"{STEM}.chain.pem", key, issued / "ca.crt", "other")
    later = datetime.now(UTC) + timedelta(hours=73)
    with pytest.raises(ConfigError, match="leaf certificate expired") as err:
        _load(issued, now=later)
    assert f"{STEM}.chain.pem" in err.value.message
    with pytest.raises(ConfigError, match="expired") as err:
        _load(issued, now=datetime.now(UTC) + timedelta(days=4000))
    with pytest.raises(ConfigError, match="not valid before"):
        _load(issued, now=datetime.now(UTC) - timedelta(hours=1))


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    directory = _ca(tmp_path)
    issued = _leaf(directory)
    _cli(
        "issue",
        "leaf",
        "--dir",
        str(directory),
        "--region",
        "eu",
        "--site",
        "par1",
        "--role",
        "cell",
        "--id",
        "c1",
    )
    with pytest.raises(ConfigError, match="is not the key of"):
        load_tls_files(issued / f"{STEM}.chain.pem", issued / "par1-cell-c1.key", issued / "ca.crt", "acme")


def test_a_chain_to_another_ca_is_refused(tmp_path: Path) -> None:
    issued = _leaf(_ca(tmp_path))
    other = _ca(tmp_path, "other")
    with pytest.raises(ConfigError, match="not issued by the CA") as err:
        load_tls_files(issued / f"{STEM}.chain.pem", issued / f"{STEM}.key", other / "ca.crt", "acme")
    assert f"{STEM}.chain.pem" in err.value.message


def test_the_name_constraint_refuses_another_federations_leaf() -> None:
    """A region CA of acme that signs an identity of `other` (a compromised or misused CA key) is refused."""
    now = datetime.now(UTC)
    root_key, region_key, leaf_key = certs.new_key(), certs.new_key(), certs.new_key()
    root = certs.build_root(root_key, "acme", now)
    region = certs.build_region(root_key, root, region_key.public_key(), RegionIdentity("acme", "eu"), now)
    foreign = Identity("other", "par1", Role.ROUTER, "r1")
    leaf = certs.build_leaf(region_key, region, leaf_key.public_key(), foreign, now)
    with pytest.raises(PermissionDenied, match="name constraints"):
        verify_chain([leaf, region], [root], now)


def test_a_region_ca_is_replaced_only_with_rotate_and_earlier_leaves_still_load(tmp_path: Path) -> None:
    directory = _ca(tmp_path)
    before = _leaf(directory)
    kept = {name: (before / f"{STEM}.{name}").read_bytes() for name in ("chain.pem", "key")}
    result = CliRunner().invoke(pki_group, ["issue", "region", "--dir", str(directory), "--region", "eu"])
    assert result.exit_code != 0 and "--rotate" in result.output
    old_ca = (directory / "regions/eu.crt").read_bytes()
    _cli("issue", "region", "--dir", str(directory), "--region", "eu", "--rotate")
    assert (directory / "regions/eu.crt").read_bytes() != old_ca
    assert os.stat(directory / "regions/eu.key").st_mode & 0o777 == 0o600
    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    for name, data in kept.items():
        (old / f"{STEM}.{name}").write_bytes(data)
        os.chmod(old / f"{STEM}.{name}", 0o600)
    (old / "ca.crt").write_bytes((directory / "ca.crt").read_bytes())
    assert _load(old).identity.id == "r1"  # type: ignore[attr-defined]  # signed by the old CA: still good
    renewed = _leaf(directory)
    chain = x509.load_pem_x509_certificates((renewed / f"{STEM}.chain.pem").read_bytes())
    assert chain[1].public_bytes(serialization.Encoding.PEM) == (directory / "regions/eu.crt").read_bytes()
