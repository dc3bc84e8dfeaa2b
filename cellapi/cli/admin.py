"""`cellctl`'s operator commands (the Federation API; the token needs the admin role): every site's
health, capacity and traffic (once, or live with `top`), why a create would land where it lands, the
RTT matrix, draining a cell."""

from __future__ import annotations

from typing import Any

import click

from cellapi.cli.config import RawOptions
from cellapi.cli.render_admin import (
    cell_line,
    explain_choice,
    explain_table,
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
@click.pass_obj
def explain(raw: RawOptions, /, flavor: str, from_site: str | None, **near_kw: Any) -> None:
    """Where a create would go and why: every candidate with eligibility and reason, then the choice."""
    request = explain_request(flavor, near_from(near_kw), from_site)

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


ADMIN_COMMANDS = (sites, top, explain, rtt, _drain_command(True), _drain_command(False))
