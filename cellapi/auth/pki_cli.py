"""`cellfed pki`: the federation's certificates, run on the operator's CA host (see cellapi.auth.pki_dir
for the directory). `init` makes the root, `issue region` an intermediate per region, `issue leaf` a
short-lived certificate per component, `show` what a certificate file says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
from cryptography import x509
from rich.console import Console
from rich.table import Table

from cellapi.auth import pki_dir
from fedlib.errors import CellfedError
from fedlib.pki import certs
from fedlib.pki.identity import ROLES, Identity, Role
from fedlib.pki.verify import load_pem_certificates

_DIR = click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The CA directory (mode 0700): root and region keys live only here.",
)
_T = TypeVar("_T")

_REGION = click.option("--region", required=True, help="Region id, e.g. eu-west.")


@click.group(name="pki")
def pki_group() -> None:
    """The federation PKI: a root CA, an intermediate per region, short-lived leaves per component."""


@pki_group.command(name="init")
@_DIR
@click.option("--federation", required=True, help="The federation name (the SPIFFE trust domain).")
@click.option("--days", type=int, default=certs.ROOT_DEFAULT_DAYS, show_default=True)
def init_command(directory: Path, federation: str, days: int) -> None:
    """Create the root CA: DIR/root.key (0600, never leaves this host) and DIR/ca.crt (copy everywhere)."""
    path = _run(lambda: pki_dir.init(directory, federation, _now(), days))
    click.echo(f"root CA: {path} (trust this in every component); key: {directory / pki_dir.ROOT_KEY}")


@pki_group.group(name="issue")
def issue_group() -> None:
    """Issue a region's intermediate or a component's leaf."""


@issue_group.command(name="region")
@_DIR
@_REGION
@click.option("--days", type=int, default=certs.REGION_DEFAULT_DAYS, show_default=True)
@click.option("--rotate", is_flag=True, help="Replace the region's CA (leaves issued before keep working).")
def issue_region_command(directory: Path, region: str, days: int, rotate: bool) -> None:
    """An intermediate CA for one region, signed by the root (pathlen 0: it issues leaves only)."""
    path = _run(lambda: pki_dir.issue_region(directory, region, _now(), days, rotate=rotate))
    click.echo(f"region CA: {path}")


@issue_group.command(name="leaf")
@_DIR
@_REGION
@click.option("--site", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--id", "component_id", required=True, help="The component's id within its site and role.")
@click.option("--dns", multiple=True, help="A DNS name the server answers to; repeat for several.")
@click.option("--ip", "ips", multiple=True, help="An IP address the server answers on; repeat for several.")
@click.option(
    "--hours",
    type=int,
    default=certs.LEAF_DEFAULT_HOURS,
    show_default=True,
    help=f"Lifetime, at most {certs.LEAF_MAX_HOURS}.",
)
def issue_leaf_command(
    directory: Path,
    region: str,
    site: str,
    role: str,
    component_id: str,
    dns: tuple[str, ...],
    ips: tuple[str, ...],
    hours: int,
) -> None:
    """A component's certificate, signed by its region's CA, written to DIR/issued/ (re-issue to rotate).

    With no --dns and no --ip, a server role gets localhost and 127.0.0.1 (one host, the local federation);
    an operator's certificate is a client's and gets neither."""
    if not dns and not ips and role != Role.OPERATOR.value:
        dns, ips = certs.DEFAULT_DNS, certs.DEFAULT_IPS

    def issue() -> pki_dir.LeafPaths:
        federation = pki_dir.federation_of(directory)
        identity = Identity(federation, site, Role(role), component_id)
        return pki_dir.issue_leaf(directory, region, identity, _now(), hours=hours, dns=dns, ips=ips)

    paths = _run(issue)
    click.echo(f"key:   {paths.key} (0600; move it to the component's host only)")
    click.echo(f"cert:  {paths.cert}")
    click.echo(f"chain: {paths.chain} (what a server presents)")
    click.echo(f"ca:    {paths.ca}")


@pki_group.command(name="show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def show_command(file: Path) -> None:
    """What a certificate file says: identity, names, issuer, validity (each certificate of a chain)."""
    chain = _run(lambda: load_pem_certificates(pki_dir.read_file(file), str(file)))
    now = _now()
    console = Console()
    for cert in chain:
        table = Table(show_header=False, title=str(file))
        table.add_column(style="bold")
        table.add_column()
        for name, value in _describe(cert, now):
            table.add_row(name, value)
        console.print(table)


def _describe(cert: x509.Certificate, now: datetime) -> list[tuple[str, str]]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    left = cert.not_valid_after_utc - now
    return [
        ("identity", ", ".join(uris) or "-"),
        ("kind", "CA" if basic.ca else "leaf"),
        ("subject", cert.subject.rfc4514_string()),
        ("dns", ", ".join(names.get_values_for_type(x509.DNSName)) or "-"),
        ("ip", ", ".join(str(ip) for ip in names.get_values_for_type(x509.IPAddress)) or "-"),
        ("issuer", cert.issuer.rfc4514_string()),
        ("not before", f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"),
        ("not after", f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"),
        ("days left", f"{left.total_seconds() / 86400:.1f}" if left.total_seconds() > 0 else "expired"),
    ]


def _run(action: Callable[[], _T]) -> _T:
    try:
        return action()
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None


def _now() -> datetime:
    return datetime.now(UTC)
