"""A component's TLS files, checked at start: `<name>.crt` (or `.chain.pem`: leaf then intermediate),
`<name>.key` and `ca.crt` (the federation root). Anything wrong is refused with a ConfigError naming the
file and the fix, so a process never starts serving with material the handshake would reject later.

Also the two file rules the CA directory shares (cellapi.auth.pki_cli): a private key readable by group or
others is refused, and a new key file is created 0600 with O_EXCL, never world-readable even briefly."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedlib.errors import CellfedError, ConfigError
from fedlib.pki.identity import Identity, Role
from fedlib.pki.verify import load_pem_certificates, verify_chain


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes as grpc's credentials take them, and what they prove."""

    cert_chain: bytes
    private_key: bytes
    root_ca: bytes
    identity: Identity
    not_after: datetime  # the earliest expiry on the chain: re-issue before it


def load_tls_files(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    ca: str | os.PathLike[str],
    expect_federation: str,
    expect_role: Role | None = None,
    now: datetime | None = None,
) -> TlsMaterial:
    cert_path, key_path, ca_path = Path(cert), Path(key), Path(ca)
    check_private_file(key_path, allow_own_group=True)
    cert_pem, key_pem, ca_pem = (read_file(path) for path in (cert_path, key_path, ca_path))
    paths = {"leaf": cert_path, "intermediate": cert_path, "ca": ca_path}
    try:
        chain = load_pem_certificates(cert_pem, "leaf")
        roots = load_pem_certificates(ca_pem, "ca")
        verified = verify_chain(
            chain,
            roots,
            now or datetime.now(UTC),
            expect_federation=expect_federation,
            expect_role=expect_role,
        )
    except CellfedError as exc:
        path = paths.get(exc.field or "leaf", cert_path)
        raise ConfigError(f"{path}: {exc.message}; {_fix(exc.field, path)}", field=str(path)) from None
    _check_key_matches(key_pem, key_path, chain[0].public_key(), cert_path)
    return TlsMaterial(cert_pem, key_pem, ca_pem, verified.identity, verified.not_after)


@contextmanager
def _file_errors(path: Path) -> Iterator[None]:
    """An OS error on a component's file, said as the file and the fix."""
    try:
        yield
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist; check the path or issue it with `cellfed pki issue`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}); check its owner and mode") from None


def read_file(path: Path) -> bytes:
    with _file_errors(path):
        return path.read_bytes()


def check_private_file(path: Path, *, allow_own_group: bool = False) -> None:
    """A private key others can read is refused, as ssh does: whoever reads it can be this component.

    `allow_own_group` admits one more shape, read-only for this process's own group (0440/0640 with the
    file's group our effective gid): what Kubernetes makes of a Secret mounted for a non-root container
    (root-owned, group fsGroup), which could not be read otherwise and may not be copied elsewhere without
    losing live rotation. A CA's keys never get this."""
    with _file_errors(path):
        info = path.stat()
    mode = info.st_mode
    own_group_read = allow_own_group and info.st_gid == os.getegid() and mode & stat.S_IRWXG == stat.S_IRGRP
    if mode & stat.S_IRWXO or (mode & stat.S_IRWXG and not own_group_read):
        raise ConfigError(f"{path} is accessible by group or others; run: chmod 600 {path}")


def write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow or clobber a file that appeared since the caller looked; the mode is given at
    # creation and fixed again after, since the umask must neither widen nor narrow it.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)


def _check_key_matches(key_pem: bytes, key_path: Path, public_key: object, cert_path: Path) -> None:
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{key_path} is not an unencrypted PEM private key; re-issue it") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.public_key() != public_key:
        raise ConfigError(
            f"{key_path} is not the key of {cert_path}; give the key issued with that certificate "
            "(the same <name>.key) or re-issue both"
        )


def _fix(field: str | None, path: Path) -> str:
    if field == "ca":
        return "give the federation's ca.crt, or renew the root (`cellfed pki init`) if it expired"
    if field == "intermediate":
        return "give the .chain.pem (leaf and region CA) or renew the region CA (`cellfed pki issue region`)"
    return f"re-issue {path.name} with `cellfed pki issue leaf`"
