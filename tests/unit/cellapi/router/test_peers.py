"""Peer health: the two detection speeds, EWMA of RTT, DEGRADED, recovery, against a reference model."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellapi.router.peers import (
    DetectorConfig,
    Health,
    PeerTable,
    data_age_ms,
    forget,
    health_of,
    observe_failure,
    observe_success,
    rtt_of,
)
from fedlib.errors import InvalidArgument

T = "ams1-c1"
CFG = DetectorConfig()  # fast_failures=2, fast_ms=3 s, slow_ms=60 s


def up(at: int, rtt: float = 10.0, table: PeerTable | None = None) -> PeerTable:
    return observe_success(table or PeerTable(), T, rtt, at)


def test_never_probed_is_unknown() -> None:
    assert health_of(PeerTable(), T, 0) is Health.HEALTH_UNKNOWN
    assert health_of(PeerTable(), T, 0, drained=True) is Health.DRAINED
    assert data_age_ms(PeerTable(), T, 0) is None and rtt_of(PeerTable(), T) is None


def test_health_names_match_the_proto_enum() -> None:
    names = {h.value for h in Health}
    assert names == {"HEALTHY", "DEGRADED", "SUSPECT", "OFFLINE", "DRAINED", "HEALTH_UNKNOWN"}


def test_first_success_is_healthy_with_its_rtt() -> None:
    t = up(1_000, rtt=12.5)
    assert health_of(t, T, 1_000) is Health.HEALTHY
    assert rtt_of(t, T) == 12.5 and data_age_ms(t, T, 1_400) == 400


def test_ewma_uses_alpha() -> None:
    t = observe_success(up(0, rtt=10.0), T, 20.0, 1_000)
    assert rtt_of(t, T) == pytest.approx(13.0)
    t = observe_success(PeerTable(DetectorConfig(alpha=1.0)), T, 10.0, 0)
    assert rtt_of(observe_success(t, T, 20.0, 1), T) == 20.0


@pytest.mark.parametrize(
    ("failures", "at", "expected"),
    [
        (1, 1_000, Health.HEALTHY),  # one lost probe is noise
        (2, 1_000, Health.SUSPECT),  # fast: by count
        (0, 2_999, Health.HEALTHY),
        (0, 3_000, Health.SUSPECT),  # fast: by silence, even with no failed probe reported
        (5, 59_999, Health.SUSPECT),
        (0, 60_000, Health.OFFLINE),  # slow
        (1, 600_000, Health.OFFLINE),
    ],
)
def test_two_speeds(failures: int, at: int, expected: Health) -> None:
    t = up(0)
    for i in range(failures):
        t = observe_failure(t, T, min(at, 500 * (i + 1)))
    assert health_of(t, T, at) is expected


def test_failures_only_from_the_start() -> None:
    t = observe_failure(PeerTable(), T, 0)
    assert health_of(t, T, 0) is Health.HEALTH_UNKNOWN  # probed once, no verdict yet
    assert health_of(t, T, 3_000) is Health.SUSPECT
    assert health_of(observe_failure(t, T, 1), T, 1) is Health.SUSPECT
    assert health_of(t, T, 60_000) is Health.OFFLINE
    assert data_age_ms(t, T, 10) is None


def test_recovery_after_suspect_and_offline() -> None:
    t = observe_failure(observe_failure(up(0), T, 1_000), T, 2_000)
    assert health_of(t, T, 2_000) is Health.SUSPECT
    t = observe_success(t, T, 11.0, 2_500)
    assert health_of(t, T, 2_500) is Health.HEALTHY
    t = observe_success(t, T, 300.0, 100_000)  # back after the slow threshold: history restarts
    assert health_of(t, T, 100_000) is Health.HEALTHY and rtt_of(t, T) == 300.0


@pytest.mark.parametrize(
    ("others_jump_ms", "expected"),
    [(0.0, Health.DEGRADED), (2.0, Health.DEGRADED), (30.0, Health.HEALTHY)],
)
def test_a_jump_every_target_shows_is_the_routers_own_and_degrades_no_one(
    others_jump_ms: float, expected: Health
) -> None:
    """The local cell (1 ms) and two remote ones (100 ms) all slow down by the same 30 ms when the router's
    own machine is loaded: that is not the local cell's fault. Alone, the same jump is."""
    baselines = {"par1-c1": 1.0, "ams1-c1": 100.0, "nyc1-c1": 100.0}
    t, now = PeerTable(), 0
    for target, rtt in baselines.items():
        t = observe_success(t, target, rtt, now)
    for _ in range(8):
        now += 1_000
        for target, rtt in baselines.items():
            jump = 30.0 if target == "par1-c1" else others_jump_ms
            t = observe_success(t, target, rtt + jump, now)
    assert health_of(t, "par1-c1", now) is expected
    assert health_of(t, "ams1-c1", now) is Health.HEALTHY


def test_rtt_jump_is_degraded_and_a_lasting_change_is_absorbed() -> None:
    t, now = up(0, rtt=10.0), 0
    for _ in range(5):
        now += 1_000
        t = observe_success(t, T, 100.0, now)
    assert health_of(t, T, now) is Health.DEGRADED
    for _ in range(300):
        now += 1_000
        t = observe_success(t, T, 100.0, now)
    assert health_of(t, T, now) is Health.HEALTHY


def test_small_absolute_jumps_are_not_degraded() -> None:
    t = up(0, rtt=1.0)
    for i in range(1, 10):
        t = observe_success(t, T, 4.0, i * 1_000)
    assert health_of(t, T, 9_000) is Health.HEALTHY


def test_baseline_follows_a_faster_path_at_once() -> None:
    t = observe_success(up(0, rtt=100.0), T, 10.0, 1_000)
    assert t.records[T].rtt_baseline_ms == 10.0


@pytest.mark.parametrize(
    ("up_", "total", "expected"),
    [
        (1, 4, Health.DEGRADED),
        (2, 4, Health.HEALTHY),
        (4, 4, Health.HEALTHY),
        (0, None, Health.DEGRADED),
        (3, None, Health.HEALTHY),
        (0, 0, Health.HEALTHY),
        (None, None, Health.HEALTHY),
    ],
)
def test_few_hosts_up_is_degraded(up_: int | None, total: int | None, expected: Health) -> None:
    assert health_of(up(0), T, 0, hosts_up=up_, hosts_total=total) is expected


def test_drained_yields_to_offline_only() -> None:
    t = observe_failure(observe_failure(up(0), T, 1), T, 2)
    assert health_of(up(0), T, 0, drained=True) is Health.DRAINED
    assert health_of(t, T, 2, drained=True) is Health.DRAINED
    assert health_of(t, T, 60_000, drained=True) is Health.OFFLINE


def test_out_of_order_completions_never_move_time_back() -> None:
    t = observe_success(up(5_000), T, 10.0, 4_000)
    assert data_age_ms(t, T, 5_000) == 0
    assert data_age_ms(t, T, 4_000) == 0  # a caller's clock behind the record is clamped, not negative


def test_table_is_immutable_and_forget_drops() -> None:
    empty = PeerTable()
    t = up(0, table=empty)
    assert T not in empty.records and T in t.records
    with pytest.raises(TypeError):
        t.records[T] = t.records[T]  # type: ignore[index]
    assert T not in forget(t, T).records and forget(empty, T) is empty


@pytest.mark.parametrize(
    "call",
    [
        lambda: observe_success(PeerTable(), T, -1.0, 0),
        lambda: observe_success(PeerTable(), T, math.nan, 0),
        lambda: observe_success(PeerTable(), T, math.inf, 0),
        lambda: observe_success(PeerTable(), T, 1.0, -1),
        lambda: observe_failure(PeerTable(), T, True),
        lambda: observe_failure(PeerTable(), "", 0),
        lambda: health_of(PeerTable(), T, -5),
        lambda: DetectorConfig(alpha=0),
        lambda: DetectorConfig(fast_ms=60_000, slow_ms=60_000),
        lambda: DetectorConfig(fast_failures=0),
        lambda: DetectorConfig(degraded_rtt_ratio=0.5),
        lambda: DetectorConfig(degraded_hosts_fraction=1.5),
    ],
)
def test_refuses_nonsense(call: object) -> None:
    with pytest.raises(InvalidArgument):
        call()  # type: ignore[operator]


events = st.lists(
    st.tuples(st.booleans(), st.integers(0, 20_000), st.floats(0.1, 500.0)), min_size=1, max_size=40
)


@given(events, st.integers(0, 120_000))
def test_health_matches_a_reference_model(script: list[tuple[bool, int, float]], later: int) -> None:
    t, now, first, last_ok, fails = PeerTable(), 0, None, None, 0
    for ok, step, rtt in script:
        now += step
        first = now if first is None else first  # silence counts from the first probe, not from 0
        t = observe_success(t, T, rtt, now) if ok else observe_failure(t, T, now)
        last_ok, fails = (now, 0) if ok else (last_ok, fails + 1)
        if ok:
            assert health_of(t, T, now) in (Health.HEALTHY, Health.DEGRADED)  # recovery is immediate
    now += later
    assert first is not None
    silent = now - (first if last_ok is None else last_ok)
    h = health_of(t, T, now)
    if silent >= CFG.slow_ms:
        assert h is Health.OFFLINE
    elif fails >= CFG.fast_failures or silent >= CFG.fast_ms:
        assert h is Health.SUSPECT
    elif last_ok is None:
        assert h is Health.HEALTH_UNKNOWN
    else:
        assert h in (Health.HEALTHY, Health.DEGRADED)
    assert data_age_ms(t, T, now) == (None if last_ok is None else now - last_ok)


@given(st.lists(st.floats(0.0, 1_000.0), min_size=1, max_size=30))
def test_ewma_stays_within_the_samples(samples: list[float]) -> None:
    t = PeerTable()
    for i, s in enumerate(samples):
        t = observe_success(t, T, s, i * 1_000)
    ewma = rtt_of(t, T)
    assert ewma is not None and min(samples) - 1e-9 <= ewma <= max(samples) + 1e-9


@given(st.lists(st.tuples(st.floats(1, 300), st.floats(0, 200)), min_size=1, max_size=12))
def test_the_shared_jump_is_the_median_of_the_other_targets(samples: list[tuple[float, float]]) -> None:
    """The per-table sorted jumps give, for every target, the median jump of all the others."""
    from cellapi.router.peers import _jump_ms, _shared_jump_ms

    t = PeerTable()
    for n, (base, jump) in enumerate(samples):
        t = observe_success(t, f"c{n}", base, 0)
        t = observe_success(t, f"c{n}", base + jump, 1_000)
    for target in t.records:
        others = sorted(j for k, r in t.records.items() if k != target and (j := _jump_ms(r)) is not None)
        expected = others[len(others) // 2] if others else 0.0
        assert _shared_jump_ms(t, target) == expected
