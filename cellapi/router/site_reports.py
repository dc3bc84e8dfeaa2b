"""Every site's traffic and RTT row, from the reports its routers publish with their heartbeats
(replication.model.RouterReport), as read from this router's own DC. Pure.

A site with several routers adds their rates up; its p99 is the worst of theirs (p99s cannot be merged
exactly without the histograms, and the worst one is what an operator must see). Only reports close in
time to the site's newest count (`current_ms`), so a router retired long ago does not add its old rates
to the live ones; when the whole site is silent its last reports stand, shown with their age."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from replication.model import RouterReport


@dataclass(frozen=True)
class SiteTraffic:
    requests_per_second: float
    errors_per_second: float
    p99_ms: float | None
    window_ms: int
    reported_at_ms: int  # of the oldest report counted: every figure is at least this fresh
    routers: int


def site_traffic(reports: Iterable[RouterReport], site_id: str, current_ms: int) -> SiteTraffic | None:
    mine = [r for r in reports if r.site_id == site_id]
    if not mine:
        return None
    newest = max(r.reported_at_ms for r in mine)
    counted = [r for r in mine if r.reported_at_ms >= newest - current_ms]
    p99s = [r.p99_latency_ms for r in counted if r.p99_latency_ms is not None]
    return SiteTraffic(
        requests_per_second=sum(r.requests_per_second for r in counted),
        errors_per_second=sum(r.errors_per_second for r in counted),
        p99_ms=max(p99s) if p99s else None,
        window_ms=max(r.window_ms for r in counted),
        reported_at_ms=min(r.reported_at_ms for r in counted),
        routers=len(counted),
    )


def freshest_by_site(reports: Iterable[RouterReport]) -> dict[str, RouterReport]:
    """site -> the newest report of any of its routers: that site's row of the RTT matrix."""
    out: dict[str, RouterReport] = {}
    for r in reports:
        best = out.get(r.site_id)
        if best is None or (r.reported_at_ms, r.router_id) > (best.reported_at_ms, best.router_id):
            out[r.site_id] = r
    return out


def nearest_by_site(cell_sites: Mapping[str, str], rtt_of: Callable[[str], float | None]) -> dict[str, float]:
    """site -> RTT to its nearest measured cell, from cell id -> site and a cell's measured RTT."""
    best: dict[str, float] = {}
    for cell_id, site_id in cell_sites.items():
        rtt = rtt_of(cell_id)
        if rtt is not None:
            best[site_id] = min(rtt, best.get(site_id, rtt))
    return best


def matrix_row(rtt_ms: Mapping[str, float], sites: Iterable[str]) -> list[float]:
    """One row of the RTT matrix in `sites` order; -1 where nothing is measured."""
    return [rtt_ms.get(s, -1.0) for s in sites]
