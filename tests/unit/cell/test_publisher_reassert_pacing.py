"""The re-assert sweep's pacing (cell.reassert_pacing): a pure function of ids and time, driven here tick
by tick over simulated periods."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cell import reassert_pacing as rp
from fedlib.errors import InvalidArgument

PERIOD_MS = 60_000


def _ids(n: int, prefix: str = "i") -> list[str]:
    return sorted(f"{prefix}{k:06d}" for k in range(n))


def _drive(pace: rp.Pacing, ids: list[str], until_ms: int, tick_ms: int = 1000, t0: int = 0) -> list[rp.Step]:
    sweep, steps = rp.start(t0, ids), []
    for now in range(t0, until_ms + 1, tick_ms):
        s = rp.step(pace, sweep, ids, now)
        sweep = s.sweep
        steps.append(s)
    return steps


def test_every_instance_is_visited_once_per_period_spread_evenly() -> None:
    ids, pace = _ids(600), rp.Pacing(PERIOD_MS, max_rows_per_s=1000)
    steps = _drive(pace, ids, PERIOD_MS - 1)  # within the first period only
    visits = Counter(i for s in steps for i in s.visit)
    assert set(visits) == set(ids) and set(visits.values()) == {1}
    per_tick = [len(s.visit) for s in steps if s.visit]
    assert max(per_tick) <= 12  # 600 over 54 s (90% of the period): about 11 a second, never a burst
    assert sum(1 for s in steps if s.finished) == 1


def test_the_next_sweep_starts_one_period_after_the_last_began() -> None:
    ids, pace = _ids(30), rp.Pacing(PERIOD_MS, max_rows_per_s=1000)
    steps = _drive(pace, ids, 3 * PERIOD_MS - 1)
    visits = Counter(i for s in steps for i in s.visit)
    assert set(visits.values()) == {3}
    assert [k for k, s in enumerate(steps) if s.started] == [60, 120]  # ticks of 1 s


def test_an_empty_cell_costs_nothing() -> None:
    pace = rp.Pacing(PERIOD_MS, max_rows_per_s=100)
    steps = _drive(pace, [], 5 * PERIOD_MS)
    assert all(not s.visit for s in steps)
    assert sum(1 for s in steps if s.started) == 5  # one bookkeeping step per period, no writes


def test_the_rate_limit_wins_over_the_period() -> None:
    ids = _ids(10_000)
    pace = rp.Pacing(PERIOD_MS, max_rows_per_s=30, rows_per_visit=3)  # 10 visits/s: 1,000 s for the cell
    steps = _drive(pace, ids, 200_000)
    visited = sum(len(s.visit) for s in steps)
    assert visited <= 10 * 200 + 1
    assert max(len(s.visit) for s in steps) <= 10


def test_changes_during_a_sweep_do_not_starve_or_repeat_anyone() -> None:
    """Ids added and removed mid-sweep never shift the cursor past an untouched instance: every id live
    for the whole sweep is visited exactly once, new ones at most once, removed ones never after removal."""
    rng = random.Random(5)
    ids = _ids(500)
    stable = set(rng.sample(ids, 300))
    pace = rp.Pacing(PERIOD_MS, max_rows_per_s=1000)
    sweep, seen, current = rp.start(0, ids), Counter[str](), list(ids)
    removed: set[str] = set()
    for now in range(0, PERIOD_MS + 5000, 1000):
        for victim in rng.sample([i for i in current if i not in stable], 3):
            current.remove(victim)
            removed.add(victim)
        current = sorted(current + [f"i{rng.randrange(10**6):06d}x" for _ in range(3)])
        s = rp.step(pace, sweep, current, now)
        assert not removed.intersection(s.visit)
        seen.update(s.visit)
        sweep = s.sweep
        if s.finished:
            break
    assert all(seen[i] == 1 for i in stable)
    assert max(seen.values()) == 1


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 400),
    period_s=st.integers(1, 120),
    tick_ms=st.sampled_from([250, 1000, 3000]),
    rate=st.floats(3, 5000),
)
def test_property_each_id_once_per_sweep_and_never_over_the_rate(
    n: int, period_s: int, tick_ms: int, rate: float
) -> None:
    ids, pace = _ids(n), rp.Pacing(period_s * 1000, max_rows_per_s=rate)
    sweep = rp.start(0, ids)
    seen: Counter[str] = Counter()
    now = 0
    while True:
        s = rp.step(pace, sweep, ids, now)
        seen.update(s.visit)
        assert sweep.visited + len(s.visit) <= pace.visits_per_s * now / 1000 + 1e-9
        sweep = s.sweep
        if s.finished or now > 10**8:
            break
        now += tick_ms
    assert set(seen) == set(ids) and all(v == 1 for v in seen.values())
    # Finished within the period, or as fast as the rate allows (one tick of slack).
    assert now <= max(period_s * 1000, n / pace.visits_per_s * 1000) + tick_ms


@pytest.mark.parametrize(
    "period_ms, rate", [(999, 10.0), (60_000, 0.0), (60_000, -1.0), (60_000, float("inf"))]
)
def test_bad_settings_name_the_field(period_ms: int, rate: float) -> None:
    with pytest.raises(InvalidArgument) as err:
        rp.Pacing(period_ms, rate)
    assert err.value.field in ("reassert_period_s", "reassert_rows_per_s")


def test_a_burst_of_deletes_starts_the_next_sweep_at_once_at_the_rate_limit() -> None:
    ids, pace = _ids(200), rp.Pacing(PERIOD_MS, max_rows_per_s=500, rows_per_visit=5)  # 100 visits/s
    sweep = rp.start(0, ids)
    while not sweep.done:
        sweep = rp.step(pace, sweep, ids, sweep.started_ms + PERIOD_MS - 1).sweep
    quiet = rp.step(pace, sweep, ids, 10_000, deletes_since_start=64)  # not more than the floor: wait
    assert not quiet.started and not quiet.visit
    burst = rp.step(pace, sweep, ids, 10_000, deletes_since_start=65)
    assert burst.started and burst.sweep.urgent
    s, now = burst.sweep, 10_000
    while not s.done:
        now += 1000
        s = rp.step(pace, s, ids, now).sweep
    assert now - 10_000 <= 3000  # 200 visits at 100/s, not spread over the minute


def test_deletes_below_a_quarter_of_a_large_cell_wait_for_the_period() -> None:
    ids, pace = _ids(2000), rp.Pacing(PERIOD_MS, max_rows_per_s=10_000)
    sweep = rp.Sweep(started_ms=0, total=2000, visited=2000, cursor=ids[-1], done=True)
    assert not rp.step(pace, sweep, ids, 1000, deletes_since_start=400).started
    assert rp.step(pace, sweep, ids, 1000, deletes_since_start=501).started
