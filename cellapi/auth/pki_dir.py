"""The CA directory on the operator's host: the only place the root and region keys live.

    DIR/                       0700
      ca.crt                   the root certificate (the bundle every component trusts)
      root.key                 0600
      regions/<region>.crt     a region's intermediate
      regions/<region>.key     0600
      issued/<stem>.key        0600, a leaf's key (the operator moves it to its machine)
      issued/<stem>.crt        the leaf
      issued/<stem>.chain.pem  the leaf then its region CA, what a server presents
      issued/ca.crt            a copy of the root, beside the leaves it verifies

CA keys are never overwritten (a new root or region key strands every certificate under the old one);
leaves are replaced on re-issue, which is their rotation, each file renamed into place whole."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedlib.errors import AlreadyExists, ConfigError
from fedlib.pki import certs
from fedlib.pki.identity import Identity, RegionIdentity
from fedrpc.tls_files import check_private_file, read_file, write_new

__all__ = [
    "ROOT_CERT",
    "ROOT_KEY",
    "LeafPaths",
    "federation_of",
    "init",
    "issue_leaf",
    "issue_region",
    "read_file",
]

ROOT_CERT = "ca.crt"
ROOT_KEY = "root.key"
REGIONS = "regions"
ISSUED = "issued"


@dataclass(frozen=True)
class LeafPaths:
    key: Path
    cert: Path
    chain: Path
    ca: Path


def init(directory: Path, federation: str, now: datetime, days: int) -> Path:
    """Creates the root; refuses a directory that already has one."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    if (directory / ROOT_KEY).exists() or (directory / ROOT_CERT).exists():
        raise AlreadyExists(f"{directory} already holds a root CA; use a new directory for a new federation")
    key = certs.new_key()
    root = certs.build_root(key, federation, now, days)
    write_new(directory / ROOT_KEY, _key_pem(key), 0o600)
    write_new(directory / ROOT_CERT, _cert_pem(root), 0o644)
    return directory / ROOT_CERT


def issue_region(directory: Path, region: str, now: datetime, days: int, *, rotate: bool = False) -> Path:
    """A region's intermediate. With `rotate`, a new key and certificate replace the old: leaves issued
    before keep working (each chain file carries the intermediate it was signed by, and peers trust only
    the root) until they are re-issued under the new one."""
    root_key, root = _load_ca(directory, directory / ROOT_KEY, directory / ROOT_CERT)
    identity = RegionIdentity(_federation(root), region)
    regions = directory / REGIONS
    regions.mkdir(exist_ok=True, mode=0o700)
    key_path, cert_path = regions / f"{region}.key", regions / f"{region}.crt"
    if not rotate and (key_path.exists() or cert_path.exists()):
        raise AlreadyExists(f"{key_path} exists; to replace the region CA, issue it again with --rotate")
    key = certs.new_key()
    cert = certs.build_region(root_key, root, key.public_key(), identity, now, days)
    _replace(key_path, _key_pem(key), 0o600)
    _replace(cert_path, _cert_pem(cert), 0o644)
    return cert_path


def issue_leaf(
    directory: Path,
    region: str,
    identity: Identity,
    now: datetime,
    *,
    hours: int,
    dns: Sequence[str],
    ips: Sequence[str],
) -> LeafPaths:
    _, root = _load_ca(directory, directory / ROOT_KEY, directory / ROOT_CERT)
    if identity.federation != _federation(root):
        raise ConfigError(f"{directory} is the CA of federation {_federation(root)!r}", field="federation")
    regions = directory / REGIONS
    ca_key, ca = _load_ca(directory, regions / f"{region}.key", regions / f"{region}.crt")
    key = certs.new_key()
    cert = certs.build_leaf(ca_key, ca, key.public_key(), identity, now, hours=hours, dns=dns, ips=ips)
    out = directory / ISSUED
    out.mkdir(exist_ok=True, mode=0o700)
    stem = identity.file_stem
    paths = LeafPaths(out / f"{stem}.key", out / f"{stem}.crt", out / f"{stem}.chain.pem", out / ROOT_CERT)
    _replace(paths.key, _key_pem(key), 0o600)
    _replace(paths.cert, _cert_pem(cert), 0o644)
    _replace(paths.chain, _cert_pem(cert) + _cert_pem(ca), 0o644)
    _replace(paths.ca, _cert_pem(root), 0o644)
    return paths


def federation_of(directory: Path) -> str:
    """The federation a CA directory's root was made for."""
    _check_directory(directory)
    return _federation(x509.load_pem_x509_certificate(read_file(directory / ROOT_CERT)))


def _load_ca(directory: Path, key_path: Path, cert_path: Path) -> tuple[certs.PrivateKey, x509.Certificate]:
    _check_directory(directory)
    if not cert_path.exists():
        hint = "cellfed pki init" if cert_path.name == ROOT_CERT else "cellfed pki issue region"
        raise ConfigError(f"{cert_path} does not exist; create it with `{hint}`")
    check_private_file(key_path)
    key = serialization.load_pem_private_key(read_file(key_path), password=None)
    if not isinstance(key, certs.PrivateKey):
        raise ConfigError(f"{key_path} is not a P-256 key of this PKI")
    return key, x509.load_pem_x509_certificate(read_file(cert_path))


def _check_directory(directory: Path) -> None:
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{directory} does not exist; create the CA with `cellfed pki init`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{directory} is accessible by group or others; run: chmod 700 {directory}")


def _federation(root: x509.Certificate) -> str:
    san = root.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(san.get_values_for_type(x509.UniformResourceIdentifier)[0]).removeprefix("spiffe://")


def _replace(path: Path, data: bytes, mode: int) -> None:
    # Written whole under a fresh name, then renamed over: a reader sees the old file or the new one, and a
    # key is 0600 from its first byte.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_new(temporary, data, mode)
    os.replace(temporary, path)


def _key_pem(key: certs.PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
