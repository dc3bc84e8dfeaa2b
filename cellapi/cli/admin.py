"""`cellctl`'s operator commands (the Federation API; the token needs the admin role): every site's
health, capacity and traffic (once, or live with `top`), why a create would land where it lands, the
RTT matrix, draining a cell, and compute hosts (list with leases, disable, enable, evacuate)."""

from __future__ import annotations

from typing import Any

import click

from cellapi.cli.config import RawOptions
from cellapi.cli.render_admin import (
    cell_line,
    evacuation_summary,
    evacuation_table,
    explain_choice,
    explain_table,
    host_line,
    hosts_table,
    rtt_table,
    sites_caption,
    sites_table,
    sites_warning,
)
from cellapi.cli.requests import cell_name, explain_request, near_from, near_options
from cellapi.cli.session import Session, run
from cellapi.cli.top import top


@click.command()
@click.pass_obj
def sites(raw: RawOptions) -> None:
    """Every site and cell: health, capacity used/free, instances by status, heartbeat age, RTT, and each
    site's traffic (request and error rates, p99) with the age of its report; one row per cell (admin)."""

    async def go(s: Session) -> int:
        view = await s.client.sites()
        s.note(sites_warning(view))
        if not s.config.json:
            s.line(sites_caption(view))
        s.show(view, lambda: sites_table(view))
        return 0

    run(raw, go)


@click.command()
@click.option("--flavor", required=True, help="The flavor to place, e.g. m1.small.")
@near_options
@click.option("--from-site", metavar="SITE", help="Pretend the request entered here (default: the router's).")
@click.option("--network", "networks", multiple=True, metavar="NAME", help="As create --network; repeatable.")
@click.pass_obj
def explain(
    raw: RawOptions, /, flavor: str, from_site: str | None, networks: tuple[str, ...], **near_kw: Any
) -> None:
    """Where a create would go and why: every candidate with eligibility and reason, then the choice."""
    request = explain_request(flavor, near_from(near_kw), from_site, networks)

    async def go(s: Session) -> int:
        ex = await s.client.explain(request)
        s.show(ex, lambda: explain_table(ex))
        if not s.config.json:
            s.line(explain_choice(ex))
        return 0

    run(raw, go)


@click.command()
@click.pass_obj
def rtt(raw: RawOptions) -> None:
    """RTT between every pair of sites, as each site's router measures it (admin)."""

    async def go(s: Session) -> int:
        matrix = await s.client.rtt_matrix()
        answered = {r.from_site for r in matrix.rows}
        missing = [site for site in matrix.sites if site not in answered]
        if missing:
            s.note(f"warning: routers of {', '.join(missing)} never published a report; their rows are empty")
        s.show(matrix, lambda: rtt_table(matrix))
        return 0

    run(raw, go)


def _drain_command(drained: bool) -> click.Command:
    verb = "drain" if drained else "undrain"
    doc = (
        "Take CELL out of placement: it keeps its instances and takes no new ones (admin)."
        if drained
        else "Put a drained CELL back into placement (admin)."
    )

    @click.command(name=verb, help=doc)
    @click.argument("cell")
    @click.option("--site", help="The cell's site (not needed with a full sites/SITE/cells/CELL name).")
    @click.option("--reason", default="", help="Why (kept with the drain).", hidden=not drained)
    @click.pass_obj
    def command(raw: RawOptions, cell: str, site: str | None, reason: str) -> None:
        name = cell_name(cell, site)

        async def go(s: Session) -> int:
            view = await (s.client.drain(name, reason) if drained else s.client.undrain(name))
            s.show(view, lambda: cell_line(view))
            return 0

        run(raw, go)

    return command


@click.group()
def host() -> None:
    """Compute hosts of a cell: list them with their leases, disable or enable one, evacuate one (admin)."""


def host_name(name: str, cell: str | None, site: str | None) -> str:
    """A bare host id with --cell and --site, or a full "sites/{site}/cells/{cell}/hosts/{host}" as is."""
    if name.startswith("sites/"):
        return name
    if not cell:
        raise click.UsageError(f"give --cell and --site for host {name!r} (or the full name)")
    return f"{cell_name(cell, site)}/hosts/{name}"


_cell_option = click.option("--cell", help="The host's cell (not needed with a full name).")
_site_option = click.option("--site", help="The cell's site (not needed with a full name).")


@host.command(name="list")
@click.argument("cell")
@_site_option
@click.pass_obj
def host_list(raw: RawOptions, cell: str, site: str | None) -> None:
    """Every host of CELL: up or not, disabled or not, its lease and when evacuation would be allowed."""
    name = cell_name(cell, site)

    async def go(s: Session) -> int:
        view = await s.client.hosts(name)
        s.show(view, lambda: hosts_table(view))
        return 0

    run(raw, go)


def _host_disable_command(disabled: bool) -> click.Command:
    verb = "disable" if disabled else "enable"
    doc = (
        "Take HOST out of placement: it keeps its instances and takes no new ones (admin)."
        if disabled
        else "Put a disabled HOST back into placement (admin)."
    )

    @host.command(name=verb, help=doc)
    @click.argument("name", metavar="HOST")
    @_cell_option
    @_site_option
    @click.option("--reason", default="", help="Why (for the log).", hidden=not disabled)
    @click.pass_obj
    def command(raw: RawOptions, name: str, cell: str | None, site: str | None, reason: str) -> None:
        full = host_name(name, cell, site)

        async def go(s: Session) -> int:
            view = await s.client.set_host_disabled(full, disabled, reason)
            s.show(view, lambda: host_line(view))
            return 0

        run(raw, go)

    return command


_host_disable_command(True)
_host_disable_command(False)


@host.command(name="evacuate")
@click.argument("name", metavar="HOST")
@_cell_option
@_site_option
@click.option("--force", is_flag=True, help="Do not wait for the lease to expire and fencing to pass.")
@click.option("--powered-off", is_flag=True, help="With --force: you confirm the host is powered off.")
@click.pass_obj
def host_evacuate(
    raw: RawOptions, name: str, cell: str | None, site: str | None, force: bool, powered_off: bool
) -> None:
    """Rebuild HOST's instances on other hosts of its cell (same ids, next generation). Allowed once its
    lease has expired and fencing time has passed; earlier only with --force --powered-off, because a
    host that still runs its guests would then run a second copy of each (admin)."""
    if powered_off and not force:
        raise click.UsageError("--powered-off only goes with --force")
    if force and not powered_off:
        raise click.UsageError(
            "--force needs --powered-off: confirm the host is off (its guests would run twice)"
        )
    full = host_name(name, cell, site)

    async def go(s: Session) -> int:
        result = await s.client.evacuate_host(full, force=force, powered_off=powered_off)
        s.show(result, lambda: evacuation_table(result))
        if not s.config.json:
            s.line(evacuation_summary(result))
        return 0

    run(raw, go)


ADMIN_COMMANDS = (sites, top, explain, rtt, _drain_command(True), _drain_command(False), host)
