"""Signing keys on disk: `<kid>.key` (Ed25519 private, PKCS#8 PEM, mode 0600, minting host only) and
`<kid>.pub` (public, SubjectPublicKeyInfo PEM, every site).

A site's routers read a directory of `*.pub` files, typically a Kubernetes Secret or ConfigMap mount.
KeyRing re-reads it when the files change, so adding or retiring a key (see cellapi.auth.tokens for the
rotation procedure) needs no restart."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cellapi.auth.tokens import Claims, Verifier, check_key_id
from fedlib.errors import AlreadyExists, CellfedError, ConfigError

log = logging.getLogger(__name__)

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
# Key files change rarely; a stat of a few files every few seconds is noise next to request traffic.
DEFAULT_CHECK_INTERVAL_S = 5.0

# (file name, mtime, size, inode) of every public key file: a Secret update swaps a symlink, which shows
# as a new inode even when mtime and size happen to match.
_Snapshot = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class KeyPairPaths:
    private: Path
    public: Path


def generate_keypair(directory: str | os.PathLike[str], key_id: str) -> KeyPairPaths:
    """Writes a new Ed25519 pair; refuses to overwrite, since replacing a key silently invalidates every
    token it signed."""
    check_key_id(key_id)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = KeyPairPaths(root / f"{key_id}{PRIVATE_SUFFIX}", root / f"{key_id}{PUBLIC_SUFFIX}")
    for path in (paths.private, paths.public):
        if path.exists():
            raise AlreadyExists(f"{path} exists; choose a new key id for a new key", field="key_id")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(paths.private, private_pem, 0o600)
    _write_new(paths.public, public_pem, 0o644)
    return paths


def read_private_key(directory: str | os.PathLike[str], key_id: str) -> bytes:
    """The private key PEM; refuses a file others can read, as ssh does, because it mints any identity."""
    path = Path(directory) / f"{check_key_id(key_id)}{PRIVATE_SUFFIX}"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"no private key {path}", field="key_id") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is accessible by group or others; run: chmod 600 {path}")
    return path.read_bytes()


def load_public_keys(directory: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every `<kid>.pub` in `directory` by key id. Hidden files (Secret mount internals) are skipped."""
    return {path.name[: -len(PUBLIC_SUFFIX)]: path.read_bytes() for path in _public_files(Path(directory))}


class KeyRing:
    """The public keys of one directory as a Verifier, reloaded when the directory's key files change.
    A failed reload (bad PEM, no keys left) keeps the previous keys and logs: a half-written update must
    not lock every user out of a site."""

    def __init__(
        self, directory: str | os.PathLike[str], *, check_interval_s: float = DEFAULT_CHECK_INTERVAL_S
    ) -> None:
        self.directory = Path(directory)
        self._interval = check_interval_s
        self._snapshot = _snapshot(self.directory)
        self._verifier = _load_verifier(self.directory)
        self._checked_at: float | None = None

    @property
    def verifier(self) -> Verifier:
        return self._verifier

    def maybe_reload(self, now_s: float | None = None) -> bool:
        """Reloads if the key files changed; with `now_s`, looks at most once per check interval.
        Returns whether new keys were loaded."""
        if now_s is not None:
            last = self._checked_at
            # A clock that stepped backwards also triggers a check rather than suppressing them.
            if last is not None and 0 <= now_s - last < self._interval:
                return False
            self._checked_at = now_s
        try:
            snapshot = _snapshot(self.directory)
        except (CellfedError, OSError) as exc:
            log.error("cannot read key directory %s, keeping key ids %s: %s",
                      self.directory, sorted(self._verifier.key_ids), exc)  # fmt: skip
            return False
        if snapshot == self._snapshot:
            return False
        self._snapshot = snapshot
        try:
            self._verifier = _load_verifier(self.directory)
        except (CellfedError, OSError) as exc:
            log.error("key reload from %s failed, keeping key ids %s: %s",
                      self.directory, sorted(self._verifier.key_ids), exc)  # fmt: skip
            return False
        log.info("reloaded key ids %s from %s", sorted(self._verifier.key_ids), self.directory)
        return True

    def verify(self, token: str, now_s: float) -> Claims:
        self.maybe_reload(now_s)
        return self._verifier.verify(token, now_s)


def _load_verifier(directory: Path) -> Verifier:
    keys = load_public_keys(directory)
    if not keys:
        raise ConfigError(f"no *{PUBLIC_SUFFIX} public keys in {directory}", field="keys_dir")
    return Verifier(keys)


def _public_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ConfigError(f"key directory {directory} does not exist", field="keys_dir")
    return sorted(
        path
        for path in directory.iterdir()
        if path.name.endswith(PUBLIC_SUFFIX) and not path.name.startswith(".") and path.is_file()
    )


def _snapshot(directory: Path) -> _Snapshot:
    entries = []
    for path in _public_files(directory):
        info = path.stat()
        entries.append((path.name, info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(entries)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow or clobber a file that appeared since the existence check.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as out:
        os.fchmod(out.fileno(), mode)  # the umask must neither widen nor narrow what the key file needs
        out.write(data)
