"""When a supervised process is started again, as data: the policy half of `cellfed up`'s supervisor
(localfed.supervisor is the edge that spawns and reaps). No clock and no processes here: every function
takes the time and returns the component's next `Watch`.

Backoff is exponential (0.5 s doubling to 10 s by default) and resets once a process has run for a
healthy period, so a component that crashes once a day restarts at once, while one that cannot start
(its port taken, its Cassandra gone) is retried ever more slowly instead of spinning a core."""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace
from enum import StrEnum


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    healthy_after_s: float = 30.0  # a process that ran this long before it exited restarts at initial_s

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s or self.factor < 1 or self.healthy_after_s < 0:
            raise ValueError(
                f"backoff {self}: need 0 < initial_s <= max_s, factor >= 1, healthy_after_s >= 0"
            )


class Phase(StrEnum):
    RUNNING = "running"  # started and announced ready
    RESTARTING = "restarting"  # exited (or failed to start); waiting out its backoff, or starting again
    HELD = "held"  # kept down on purpose (an operator's or a test's kill): never restarted
    STOPPED = "stopped"  # supervision ended (`cellfed down`)


@dataclass(frozen=True)
class Watch:
    """What the supervisor knows of one component."""

    name: str
    phase: Phase = Phase.RUNNING
    restarts: int = 0  # how many times it was started again after an exit
    failures: int = 0  # start attempts that did not reach ready (port taken, exited early, timed out)
    delay_s: float = 0.0  # the backoff before the next start; 0 until the first exit
    started_at: float = 0.0  # when the current process became ready
    restart_at: float | None = None  # when the next start is due (RESTARTING only)
    last_exit: str = ""  # how the last process ended, for the log and `cellfed status`


def next_delay(previous_s: float, ran_s: float, policy: Backoff) -> float:
    """The wait before the next start: initial after a first exit or a healthy run, else doubled."""
    if previous_s <= 0 or ran_s >= policy.healthy_after_s:
        return policy.initial_s
    return min(previous_s * policy.factor, policy.max_s)


def started(watch: Watch, now: float) -> Watch:
    """The component is up and announced ready."""
    return replace(watch, phase=Phase.RUNNING, started_at=now, restart_at=None)


def exited(watch: Watch, now: float, how: str, policy: Backoff) -> Watch:
    """A running component's process ended: schedule its restart (a held or stopped one stays down)."""
    if watch.phase in (Phase.HELD, Phase.STOPPED):
        return replace(watch, last_exit=how)
    delay = next_delay(watch.delay_s, now - watch.started_at, policy)
    return replace(watch, phase=Phase.RESTARTING, delay_s=delay, restart_at=now + delay, last_exit=how)


def start_failed(watch: Watch, now: float, why: str, policy: Backoff) -> Watch:
    """A start attempt did not reach ready: counted, and the next attempt waits longer."""
    if watch.phase in (Phase.HELD, Phase.STOPPED):
        return replace(watch, failures=watch.failures + 1, last_exit=why)
    delay = next_delay(watch.delay_s, 0.0, policy)
    return replace(
        watch,
        phase=Phase.RESTARTING,
        failures=watch.failures + 1,
        delay_s=delay,
        restart_at=now + delay,
        last_exit=why,
    )


def restarting(watch: Watch) -> Watch:
    """A start attempt begins (counted as a restart whether or not it reaches ready)."""
    return replace(watch, restarts=watch.restarts + 1)


def held(watch: Watch) -> Watch:
    return replace(watch, phase=Phase.HELD, restart_at=None)


def stopped(watch: Watch) -> Watch:
    return replace(watch, phase=Phase.STOPPED, restart_at=None)


def due(watch: Watch, now: float) -> bool:
    return watch.phase == Phase.RESTARTING and watch.restart_at is not None and now >= watch.restart_at


def describe_exit(returncode: int) -> str:
    """Popen's returncode as a person reads it: 'killed by SIGKILL', 'exit code 1'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
