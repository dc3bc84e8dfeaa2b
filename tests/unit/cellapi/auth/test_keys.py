"""Key files: permissions, no overwrite, loading, and the KeyRing's reload-on-change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cellapi.auth.keys import KeyRing, generate_keypair, load_public_keys, read_private_key
from cellapi.auth.tokens import mint
from fedlib.errors import AlreadyExists, ConfigError, Unauthenticated

NOW = 1_750_000_000.0


def token_for(keys: Path, kid: str) -> str:
    pem = read_private_key(keys, kid)
    return mint(pem, kid, subject="alice", tenant="acme", roles=["user"], ttl_s=600, now_s=NOW)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_private_0600_and_public(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # a permissive umask must not leak into the private key's mode
    try:
        paths = generate_keypair(tmp_path / "keys", "k1")
    finally:
        os.umask(old_umask)
    assert paths.private == tmp_path / "keys" / "k1.key"
    assert mode_of(paths.private) == 0o600
    assert mode_of(paths.public) == 0o644
    assert b"PRIVATE KEY" in paths.private.read_bytes()
    assert load_public_keys(tmp_path / "keys") == {"k1": paths.public.read_bytes()}


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "k1")
    before = (tmp_path / "k1.key").read_bytes()
    with pytest.raises(AlreadyExists):
        generate_keypair(tmp_path, "k1")
    assert (tmp_path / "k1.key").read_bytes() == before


def test_read_private_key_refuses_readable_by_others(tmp_path: Path) -> None:
    paths = generate_keypair(tmp_path, "k1")
    paths.private.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_private_key(tmp_path, "k1")
    with pytest.raises(ConfigError, match="no private key"):
        read_private_key(tmp_path, "k2")


def test_load_skips_private_and_hidden_files(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "k1")
    (tmp_path / ".k0.pub").write_text("editor swap file")
    (tmp_path / "README").write_text("not a key")
    assert set(load_public_keys(tmp_path)) == {"k1"}


def test_keyring_needs_a_directory_with_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        KeyRing(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"no \*\.pub"):
        KeyRing(tmp_path)


def test_keyring_reloads_on_change_at_most_once_per_interval(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "k1")
    ring = KeyRing(tmp_path, check_interval_s=5.0)
    old_token = token_for(tmp_path, "k1")
    assert ring.verify(old_token, NOW).key_id == "k1"

    generate_keypair(tmp_path, "k2")  # step 2 of rotation: the new public key reaches the site
    new_token = token_for(tmp_path, "k2")
    assert not ring.maybe_reload(NOW + 1)  # within the interval: no stat at all
    assert ring.verify(new_token, NOW + 5).key_id == "k2"
    assert ring.verifier.key_ids == {"k1", "k2"}

    (tmp_path / "k1.pub").unlink()  # step 4: the old key is retired
    with pytest.raises(Unauthenticated, match="unknown key id 'k1'"):
        ring.verify(old_token, NOW + 10)
    assert ring.verify(new_token, NOW + 10).key_id == "k2"


def test_keyring_without_time_checks_every_call(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "k1")
    ring = KeyRing(tmp_path)
    assert not ring.maybe_reload()
    generate_keypair(tmp_path, "k2")
    assert ring.maybe_reload()
    assert not ring.maybe_reload()


def test_keyring_sees_a_replaced_file(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "k1")
    ring = KeyRing(tmp_path)
    other = generate_keypair(tmp_path / "other", "k1")
    # An atomic replace (as a Secret update does) with a new key under the same id.
    os.replace(other.public, tmp_path / "k1.pub")
    assert ring.maybe_reload()
    assert ring.verify(token_for(tmp_path / "other", "k1"), NOW).key_id == "k1"


def test_keyring_keeps_old_keys_when_a_reload_fails(tmp_path: Path) -> None:
    generate_keypair(tmp_path, "k1")
    ring = KeyRing(tmp_path)
    (tmp_path / "k2.pub").write_text("-----BEGIN PUBLIC KEY-----\nhalf written")
    assert not ring.maybe_reload()
    assert ring.verifier.key_ids == {"k1"}
    (tmp_path / "k2.pub").unlink()
    (tmp_path / "k1.pub").unlink()  # no keys left: refusing everyone is never what was meant
    assert not ring.maybe_reload()
    assert ring.verify(token_for(tmp_path, "k1"), NOW).key_id == "k1"
