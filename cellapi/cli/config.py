"""`cellctl`'s global options resolved once into a frozen config: routers and token from flags, files or
environment. Resolution is lazy (per command, not in the group callback) so `cellctl <cmd> --help` works
without credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

ROUTERS_ENV = "CELLFED_ROUTERS"
TOKEN_ENV = "CELLFED_TOKEN"
CA_ENV = "CELLFED_CA"
CERT_ENV = "CELLFED_CERT"
KEY_ENV = "CELLFED_KEY"
OUTPUTS = ("table", "json")


@dataclass(frozen=True)
class RawOptions:
    """The global options as typed, before defaults from the environment are applied."""

    routers: tuple[str, ...]
    token: str | None
    token_file: Path | None
    output: str
    timeout_s: float
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class CliConfig:
    routers: tuple[str, ...]
    token: str
    output: str
    timeout_s: float
    ca: bytes | None = None  # PEM of the CA the routers' certificates chain to; None: plaintext
    identity: tuple[bytes, bytes] | None = None  # an operator's (chain, key) for a router's admin port

    @property
    def json(self) -> bool:
        return self.output == "json"


def resolve(raw: RawOptions, env: Mapping[str, str]) -> CliConfig:
    """Flags win over the environment; a missing value is a usage error naming every way to give it."""
    routers = raw.routers or _split(env.get(ROUTERS_ENV, ""))
    if not routers:
        raise click.UsageError(f"no router given: pass --router HOST:PORT (repeatable) or set {ROUTERS_ENV}")
    for endpoint in routers:
        _check_endpoint(endpoint)
    if raw.token and raw.token_file:
        raise click.UsageError("give either --token or --token-file, not both")
    token = _read_token(raw.token_file) if raw.token_file else (raw.token or env.get(TOKEN_ENV, "").strip())
    if not token:
        raise click.UsageError(f"no token given: pass --token or --token-file, or set {TOKEN_ENV}")
    if raw.timeout_s <= 0:
        raise click.UsageError("--timeout must be a positive number of seconds")
    ca_file = raw.ca_file or (Path(env[CA_ENV]) if env.get(CA_ENV, "").strip() else None)
    ca = _read_ca(ca_file) if ca_file else None
    identity = _identity(raw, env, ca)
    return CliConfig(
        routers=routers, token=token, output=raw.output, timeout_s=raw.timeout_s, ca=ca, identity=identity
    )


def _identity(raw: RawOptions, env: Mapping[str, str], ca: bytes | None) -> tuple[bytes, bytes] | None:
    cert = raw.cert_file or (Path(env[CERT_ENV]) if env.get(CERT_ENV, "").strip() else None)
    key = raw.key_file or (Path(env[KEY_ENV]) if env.get(KEY_ENV, "").strip() else None)
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise click.UsageError("give both --cert and --key (an operator's certificate chain and its key)")
    if ca is None:
        raise click.UsageError(
            f"--cert needs --ca (or {CA_ENV}): a client certificate is shown over TLS only"
        )
    return _read_pem(cert, "--cert", b"-----BEGIN CERTIFICATE-----"), _read_pem(
        key, "--key", b"PRIVATE KEY-----"
    )


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _check_endpoint(endpoint: str) -> None:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.UsageError(f"router {endpoint!r} is not HOST:PORT (from --router or {ROUTERS_ENV})")


def _read_ca(path: Path) -> bytes:
    return _read_pem(path, "--ca", b"-----BEGIN CERTIFICATE-----")


def _read_pem(path: Path, flag: str, marker: bytes) -> bytes:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"{flag} {path}: {exc.strerror or exc}") from None
    if marker not in pem:
        what = "certificate" if b"CERTIFICATE" in marker else "private key"
        raise click.UsageError(f"{flag} {path} holds no PEM {what}")
    return pem


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise click.UsageError(f"--token-file {path}: {exc.strerror or exc}") from None
    if not token:
        raise click.UsageError(f"--token-file {path} is empty")
    return token
