"""replication.model.RouterReport: what a router publishes is checked before it is written, errors
naming the field."""

from __future__ import annotations

import pytest

from fedlib.errors import InvalidArgument
from replication.model import CapacitySummary, RouterReport

T0 = 1_750_000_000_000


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"requests_per_second": -1.0}, "requests_per_second"),
        ({"errors_per_second": 5.0}, "errors_per_second"),  # more errors than requests
        ({"p99_latency_ms": float("nan")}, "p99_latency_ms"),
        ({"window_ms": 0}, "window_ms"),
        ({"rtt_ms": {"Bad Site": 1.0}}, "rtt_ms"),
        ({"rtt_ms": {"nyc1": float("inf")}}, "rtt_ms[nyc1]"),
    ],
)
def test_router_report_refuses_bad_values(changes: dict[str, object], field: str) -> None:
    base: dict[str, object] = dict(
        router_id="par1-r1", site_id="par1", reported_at_ms=T0, window_ms=30_000,
        requests_per_second=1.0, errors_per_second=0.5, p99_latency_ms=3.0, rtt_ms={},
    )  # fmt: skip
    with pytest.raises(InvalidArgument) as err:
        RouterReport(**{**base, **changes})  # type: ignore[arg-type]
    assert err.value.field == field


def test_report_keeps_rtts_sorted_and_rates_as_floats() -> None:
    r = RouterReport("par1-r1", "par1", T0, 30_000, 3, 0, None, {"sin1": 90, "nyc1": 36.5})
    assert list(r.rtt_ms) == ["nyc1", "sin1"] and isinstance(r.requests_per_second, float)


def test_capacity_status_counts_must_be_counts() -> None:
    with pytest.raises(InvalidArgument) as err:
        CapacitySummary("c1", 1, 1, 1, 1, 1, 1, 1, 1, T0, {"ACTIVE": -1})
    assert err.value.field == "instances_by_status[ACTIVE]"
