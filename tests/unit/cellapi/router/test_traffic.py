"""cellapi.router.traffic: rates and p99 from cumulative counters, against Prometheus' own definitions
(rate(), histogram_quantile()) worked by hand, and as properties over random histograms."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellapi.router.traffic import Sample, between, keep_window, quantile, summary
from fedlib.errors import InvalidArgument

INF = math.inf
BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, INF)


def sample(at_ms: int, requests: float, errors: float, counts: tuple[float, ...]) -> Sample:
    return Sample(at_ms, requests, errors, tuple(zip(BOUNDS, counts, strict=True)))


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        # 100 requests all under 1 ms: the 99th is 99% of the way through the first bucket.
        (((0.001, 100.0), (INF, 100.0)), 0.99, 0.00099),
        # 50 under 10 ms, 50 in 10-50 ms: rank 99 is 49/50 of the way through the second bucket.
        (((0.01, 50.0), (0.05, 100.0), (INF, 100.0)), 0.99, 0.01 + 0.04 * 49 / 50),
        # Only the +Inf bucket holds the rank: the highest finite bound is the answer, as in Prometheus.
        (((0.01, 10.0), (INF, 100.0)), 0.99, 0.01),
        (((0.01, 0.0), (INF, 0.0)), 0.99, None),  # nothing happened: no latency to speak of
        (((0.01, 10.0), (INF, 10.0)), 0.0, 0.0),
    ],
)
def test_quantile_matches_histogram_quantile(
    buckets: tuple[tuple[float, float], ...], q: float, expected: float | None
) -> None:
    got = quantile(q, buckets)
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_rates_over_a_window() -> None:
    old = sample(10_000, 100, 4, (10, 50, 80, 95, 98, 100, 100))
    new = sample(40_000, 400, 10, (10, 50, 80, 95, 98, 100, 400))
    t = between(old, new)
    assert t.window_ms == 30_000
    assert t.requests_per_second == pytest.approx(10.0)
    assert t.errors_per_second == pytest.approx(0.2)
    assert t.p99_ms == pytest.approx(500.0)  # the 300 new requests all took over 0.5 s


def test_a_counter_reset_counts_from_zero_not_negative() -> None:
    before = sample(0, 1000, 50, (900, 950, 1000, 1000, 1000, 1000, 1000))
    after_restart = sample(10_000, 20, 0, (20, 20, 20, 20, 20, 20, 20))
    t = between(before, after_restart)
    assert t.requests_per_second == pytest.approx(2.0) and t.errors_per_second == 0.0
    assert t.p99_ms == pytest.approx(0.99)  # ms: 99% of the way through the first (1 ms) bucket


def test_window_keeps_one_sample_at_or_before_its_start() -> None:
    window: tuple[Sample, ...] = ()
    for at in range(0, 70_000, 10_000):
        window = keep_window(window, sample(at, at / 1000, 0, (0,) * 6 + (at / 1000,)), 30_000)
    assert [s.at_ms for s in window] == [30_000, 40_000, 50_000, 60_000]
    t = summary(window)
    assert t is not None and t.window_ms == 30_000 and t.requests_per_second == pytest.approx(1.0)
    assert summary(window[:1]) is None
    with pytest.raises(InvalidArgument):
        keep_window(window, sample(1, 0, 0, (0,) * 7), 30_000)


def test_buckets_must_end_with_inf() -> None:
    with pytest.raises(InvalidArgument) as err:
        Sample(0, 0, 0, ((0.1, 0.0), (0.5, 0.0)))
    assert err.value.field == "buckets"


@st.composite
def histograms(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    increments = draw(st.lists(st.integers(0, 1000), min_size=len(BOUNDS), max_size=len(BOUNDS)))
    total, out = 0.0, []
    for bound, inc in zip(BOUNDS, increments, strict=True):
        total += inc
        out.append((bound, total))
    return tuple(out)


@given(histograms(), st.floats(0, 1), st.floats(0, 1))
def test_quantiles_are_monotone_and_within_the_finite_bounds(
    buckets: tuple[tuple[float, float], ...], q1: float, q2: float
) -> None:
    a, b = quantile(min(q1, q2), buckets), quantile(max(q1, q2), buckets)
    if buckets[-1][1] == 0:
        assert a is None and b is None
        return
    assert a is not None and b is not None
    assert 0 <= a <= b + 1e-12 <= BOUNDS[-2] + 1e-12


@given(histograms(), st.integers(0, 500), st.integers(1, 120_000))
def test_rates_are_never_negative_and_errors_never_exceed_requests(
    buckets: tuple[tuple[float, float], ...], errors: int, window_ms: int
) -> None:
    total = buckets[-1][1]
    new = Sample(window_ms, total, float(errors), buckets)
    t = between(Sample(0, 0, 0, tuple((b, 0.0) for b in BOUNDS)), new)
    assert t.requests_per_second == pytest.approx(total / (window_ms / 1000))
    assert 0 <= t.errors_per_second <= t.requests_per_second
