"""cellapi.router.site_reports: a site's traffic from its routers' reports, the RTT rows, nearest cells."""

from __future__ import annotations

import pytest

from cellapi.router.site_reports import freshest_by_site, matrix_row, nearest_by_site, site_traffic
from replication.model import RouterReport

T0 = 1_790_000_000_000


def report(router: str, site: str, at: int, rps: float, p99: float | None, **rtt: float) -> RouterReport:
    return RouterReport(router, site, at, 30_000, rps, rps / 4, p99, rtt)


def test_a_site_adds_its_routers_rates_and_keeps_the_worst_p99() -> None:
    reports = [
        report("par1-r1", "par1", T0, 8.0, 12.0),
        report("par1-r2", "par1", T0 - 1_000, 4.0, 30.0),
        report("nyc1-r1", "nyc1", T0, 100.0, 1.0),
    ]
    t = site_traffic(reports, "par1", current_ms=6_000)
    assert t is not None
    assert (t.requests_per_second, t.errors_per_second, t.p99_ms) == (12.0, 3.0, 30.0)
    assert t.reported_at_ms == T0 - 1_000 and t.routers == 2 and t.window_ms == 30_000


def test_a_router_retired_long_ago_adds_nothing_but_a_silent_site_keeps_its_last_report() -> None:
    reports = [
        report("par1-r1", "par1", T0, 8.0, None),
        report("par1-old", "par1", T0 - 3_600_000, 50.0, 9.0),
    ]
    t = site_traffic(reports, "par1", current_ms=6_000)
    assert t is not None and (t.requests_per_second, t.p99_ms, t.routers) == (8.0, None, 1)
    # Every router of sin1 is dead: its last report still stands, and its age says how old it is.
    gone = site_traffic([report("sin1-r1", "sin1", T0 - 600_000, 2.0, 5.0)], "sin1", current_ms=6_000)
    assert gone is not None and gone.reported_at_ms == T0 - 600_000 and gone.requests_per_second == 2.0
    assert site_traffic(reports, "ams1", current_ms=6_000) is None  # never reported: unknown, not zero


def test_the_rtt_row_of_a_site_is_its_freshest_report() -> None:
    rows = freshest_by_site(
        [
            report("par1-r1", "par1", T0 - 5, 0, None, nyc1=36.0),
            report("par1-r2", "par1", T0, 0, None, nyc1=38.0),
            report("nyc1-r1", "nyc1", T0, 0, None, par1=37.0),
        ]
    )
    assert {s: r.router_id for s, r in rows.items()} == {"par1": "par1-r2", "nyc1": "nyc1-r1"}
    assert matrix_row(rows["par1"].rtt_ms, ["nyc1", "par1", "sin1"]) == [38.0, -1.0, -1.0]


def test_nearest_cell_per_site() -> None:
    rtts = {"par1-c1": 0.5, "par1-c2": 0.3, "nyc1-c1": 36.0, "sin1-c1": None}
    cells = {"par1-c1": "par1", "par1-c2": "par1", "nyc1-c1": "nyc1", "sin1-c1": "sin1"}
    assert nearest_by_site(cells, rtts.get) == {"par1": pytest.approx(0.3), "nyc1": 36.0}
