"""The federation as an operator sees it from one router (Federation API, admin token)."""

from __future__ import annotations

import asyncio
import time

from cellfed.v1 import common_pb2, federation_pb2
from rich.console import Console
from rich.table import Table

from cellapi.client import Client
from localfed.launcher import LocalFederation

_TAKING_WORK = frozenset({common_pb2.HEALTHY, common_pb2.DEGRADED})


async def wait_ready(
    fed: LocalFederation,
    timeout_s: float = 90,
    healths: frozenset[int] = _TAKING_WORK,
    reported_since_ms: int | None = None,
) -> None:
    """Every router sees every cell with hosts up and a health in `healths` (by default those that take
    work: HEALTHY, or DEGRADED, slow but placeable). With `reported_since_ms` (wall clock), the hosts-up
    figure must come from a capacity report made at or after it: after a cell restarts, the probe finds
    it at once while the capacity row is still the one it wrote before, with hosts its agents have not
    yet reconnected."""
    deadline = time.monotonic() + timeout_s
    for s in fed.router_sites():
        admin = Client([fed.router(s.site)], fed.tokens["admin"], ca=fed.ca)
        try:
            while True:
                view = await admin.sites()
                cells = [c for site in view.sites for c in site.cells]
                now_ms = time.time() * 1000
                ok = [
                    c
                    for c in cells
                    if c.capacity.hosts_up > 0
                    and c.health in healths
                    and (reported_since_ms is None or _reported_at_ms(c, now_ms) >= reported_since_ms)
                ]
                if len(ok) == len(fed.sites):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"router {s.site} sees {len(ok)} of {len(fed.sites)} cells ready")
                await asyncio.sleep(0.5)
        finally:
            await admin.close()


def _reported_at_ms(cell: federation_pb2.CellView, now_ms: float) -> float:
    return now_ms - cell.capacity_age.ToMilliseconds()


async def print_sites(console: Console, fed: LocalFederation, from_site: str | None = None) -> None:
    site = from_site or fed.sites[0].site
    admin = Client([fed.router(site)], fed.tokens["admin"], ca=fed.ca)
    try:
        view = await admin.sites()
    finally:
        await admin.close()
    table = Table(title=f"Federation view from the router of {site}")
    for column in (
        "site",
        "region",
        "health",
        "cell",
        "vCPUs free/total",
        "memory GB free/total",
        "instances",
        "RTT ms",
        "heartbeat age s",
    ):
        table.add_column(column)
    for s in view.sites:
        for c in s.cells:
            cap = c.capacity
            table.add_row(
                s.site,
                s.region,
                common_pb2.Health.Name(s.health),
                c.cell,
                f"{cap.vcpus_free}/{cap.vcpus_total}",
                f"{cap.memory_mb_free // 1024}/{cap.memory_mb_total // 1024}",
                str(cap.instances),
                f"{c.rtt.ToMilliseconds()}",
                f"{s.heartbeat_age.ToMilliseconds() / 1000:.1f}",
            )
    console.print(table)
