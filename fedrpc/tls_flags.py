"""The TLS flags every server process shares (`--tls-dir`, `--tls-name`) and what they become: the
process's ReloadingTls, checked at start, or None for a plaintext deployment (the local demo's default).

DIR holds what `cellfed pki issue leaf` wrote for this component: `<name>.chain.pem`, `<name>.key`, `ca.crt`,
and optionally `revoked.txt`. The name defaults to the file stem the PKI gives the component's identity
(`<site>-<role>-<id>`); the federation is the one `ca.crt` was made for. Anything wrong stops the process
before it serves, with the file and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fedlib.errors import CellfedError, ConfigError
from fedlib.pki.identity import Identity, Role
from fedlib.pki.verify import federation_of_root
from fedrpc.revocation import RevocationList
from fedrpc.tls import ReloadingTls, TlsFiles
from fedrpc.tls_files import read_file

_F = TypeVar("_F", bound=Callable[..., Any])

REVOKED_FILE = "revoked.txt"


def tls_options(command: _F) -> _F:
    command = click.option(
        "--tls-name",
        default="",
        metavar="STEM",
        help="File stem of this component's certificate in --tls-dir (default: <site>-<role>-<id>).",
    )(command)
    return click.option(
        "--tls-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Serve and dial with mTLS using the certificate `cellfed pki issue leaf` made for this "
        "component (DIR/<name>.chain.pem, .key, ca.crt; revoked.txt if present). Off: plaintext.",
    )(command)


def load_component_tls(
    tls_dir: Path | None, name: str, site: str, role: Role, component_id: str
) -> ReloadingTls | None:
    """The component's TLS, or None without --tls-dir; a click error naming the file and the fix."""
    if tls_dir is None:
        return None
    try:
        federation = federation_of_root(read_file(tls_dir / "ca.crt"))
        stem = name or Identity(federation, site, role, component_id).file_stem
        tls = ReloadingTls.start(TlsFiles.issued(tls_dir, stem, federation, role))
    except CellfedError as exc:
        raise click.UsageError(f"--tls-dir: {exc.message}") from None
    identity = tls.material.identity
    if identity.site != site:
        raise click.UsageError(
            f"--tls-dir: {tls.files.cert} is for site {identity.site}, not {site}; "
            f"issue one with `cellfed pki issue leaf --site {site} --role {role.value}`"
        )
    return tls


def load_revocations(tls_dir: Path | None) -> RevocationList | None:
    if tls_dir is None:
        return None
    try:
        return RevocationList.start(tls_dir / REVOKED_FILE)
    except ConfigError as exc:
        raise click.UsageError(f"--tls-dir: {exc.message}") from None
