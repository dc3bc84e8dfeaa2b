"""The supervisor's policy: when a component comes back, and how the backoff grows and resets."""

from __future__ import annotations

import pytest

from localfed import supervision as sv
from localfed.supervision import Backoff, Phase, Watch

POLICY = Backoff(initial_s=0.5, factor=2.0, max_s=10.0, healthy_after_s=30.0)


def test_a_first_exit_restarts_after_the_initial_delay() -> None:
    w = sv.exited(
        sv.started(Watch("cell:par1"), now=100.0), now=105.0, how="killed by SIGKILL", policy=POLICY
    )
    assert w.phase == Phase.RESTARTING and w.delay_s == 0.5 and w.restart_at == 105.5
    assert w.last_exit == "killed by SIGKILL"
    assert not sv.due(w, 105.4) and sv.due(w, 105.5)


def test_quick_crashes_double_the_delay_up_to_the_cap() -> None:
    w, now, delays = sv.started(Watch("router:nyc1"), 0.0), 0.0, []
    for _ in range(8):
        now += 1.0  # each run lasts a second: never healthy
        w = sv.exited(w, now, "exit code 1", POLICY)
        delays.append(w.delay_s)
        w = sv.started(sv.restarting(w), now + w.delay_s)
        now += w.delay_s
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert w.restarts == 8


def test_a_healthy_period_resets_the_backoff() -> None:
    w = Watch("agent:sin1-h1", delay_s=8.0)
    w = sv.exited(sv.started(w, 0.0), now=30.0, how="killed by SIGKILL", policy=POLICY)
    assert w.delay_s == 0.5


def test_failed_starts_are_counted_and_back_off() -> None:
    w = sv.exited(sv.started(Watch("cell:sin1"), 0.0), 1.0, "killed by SIGKILL", POLICY)
    for expected in (1.0, 2.0, 4.0):
        w = sv.start_failed(sv.restarting(w), 10.0, "port 7100 in use", POLICY)
        assert w.delay_s == expected and w.phase == Phase.RESTARTING and w.restart_at == 10.0 + expected
    assert w.failures == 3 and w.restarts == 3 and w.last_exit == "port 7100 in use"


@pytest.mark.parametrize("down", [sv.held, sv.stopped])
def test_a_held_or_stopped_component_is_never_scheduled(down: object) -> None:
    w = down(sv.started(Watch("router:par1"), 0.0))  # type: ignore[operator]
    after_exit = sv.exited(w, 5.0, "killed by SIGKILL", POLICY)
    after_fail = sv.start_failed(w, 5.0, "why", POLICY)
    for x in (after_exit, after_fail):
        assert x.phase == w.phase and x.restart_at is None and not sv.due(x, 1e9)


def test_describe_exit_names_the_signal() -> None:
    assert sv.describe_exit(-9) == "killed by SIGKILL"
    assert sv.describe_exit(-15) == "killed by SIGTERM"
    assert sv.describe_exit(3) == "exit code 3"


def test_a_nonsense_backoff_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(initial_s=5, max_s=1)
