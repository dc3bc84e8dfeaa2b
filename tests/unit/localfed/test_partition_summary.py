"""The partition benchmark's summary: success rates per side and phase, errors by status, stale answers."""

from __future__ import annotations

from localfed.bench.partition_load import Outcome, summarize

SIDES = {"par1": "rest", "nyc1": "rest", "sin1": "cut side"}


def test_rates_errors_and_stale_answers_per_side_and_phase() -> None:
    outcomes = [
        Outcome("sin1", "create", "cut", True, "OK", 10.0),
        Outcome("sin1", "create", "cut", False, "UNAVAILABLE", 3000.0),
        Outcome("par1", "create", "cut", True, "OK", 5.0),
        Outcome("nyc1", "create", "cut", True, "OK", 7.0),
        Outcome("par1", "get (other site)", "cut", True, "OK", 4.0, stale=True),
        Outcome("par1", "create", "before", True, "OK", 6.0),
    ]
    got = summarize(outcomes, SIDES)
    assert set(got) == {"cut", "before"}
    cut_create = got["cut"]["cut side: create"]
    assert (cut_create["n"], cut_create["ok"], cut_create["success_rate"]) == (2, 1, 0.5)
    assert cut_create["errors"] == {"UNAVAILABLE": 1}
    assert cut_create["p50_ms"] == 10.0  # failures do not count towards latency
    rest_create = got["cut"]["rest: create"]
    assert (rest_create["n"], rest_create["success_rate"], rest_create["errors"]) == (2, 1.0, {})
    assert got["cut"]["rest: get (other site)"]["stale"] == 1
    assert got["before"]["rest: create"]["n"] == 1


def test_a_group_with_only_failures_has_no_latency() -> None:
    got = summarize([Outcome("sin1", "get (own)", "cut", False, "DEADLINE_EXCEEDED", 3000.0)], SIDES)
    row = got["cut"]["cut side: get (own)"]
    assert row["p50_ms"] is None and row["success_rate"] == 0.0
