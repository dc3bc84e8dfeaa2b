"""The supervisor's edge with real child processes: a killed child is reaped and started again with the
same command; a start that fails is counted and retried; a held child stays down; after stop() nothing
is started again."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from localfed.process_state import process_state
from localfed.supervision import Backoff, Phase
from localfed.supervisor import Restartable, Supervisor

FAST = Backoff(initial_s=0.05, factor=2.0, max_s=0.2, healthy_after_s=60.0)
ARGV = ["sh", "-c", "echo READY; exec sleep 60"]


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _spawn() -> subprocess.Popen[bytes]:
    return subprocess.Popen(ARGV, stdout=subprocess.PIPE, start_new_session=True)


def _ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    if proc.stdout.readline() != b"READY\n":
        raise RuntimeError(f"exited with code {proc.wait()} before it was ready")


class Harness:
    def __init__(self, how: Restartable) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.changes = 0
        self.sup = Supervisor(self.procs, on_change=self._changed, policy=FAST)
        first = _spawn()
        _ready(first)
        self.first = first
        self.sup.adopt("cell:par1", first, how)

    def _changed(self) -> None:
        self.changes += 1

    def watch(self) -> Phase:
        return self.sup.watches()["cell:par1"].phase


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(Restartable(_spawn, _ready))
    yield h
    h.sup.stop()
    for proc in h.procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_child_is_reaped_and_restarted_with_the_same_command(harness: Harness) -> None:
    for n in (1, 2, 3):
        old = harness.procs["cell:par1"]
        os.kill(old.pid, signal.SIGKILL)
        _until(lambda old=old: harness.procs["cell:par1"] is not old and harness.watch() == Phase.RUNNING)
        assert process_state(old.pid) == "gone"  # reaped: no zombie left behind
        new = harness.procs["cell:par1"]
        assert new.args == ARGV and new.poll() is None
        w = harness.sup.watches()["cell:par1"]
        assert w.restarts == n and w.failures == 0 and w.last_exit == "killed by SIGKILL"
    assert harness.changes >= 6  # an exit and a restart each time, for the state file


def test_a_start_that_fails_is_counted_and_retried_with_backoff() -> None:
    attempts: list[float] = []

    def flaky_spawn() -> subprocess.Popen[bytes]:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:  # as if its port were taken: it exits before READY
            return subprocess.Popen(["sh", "-c", "exit 1"], stdout=subprocess.PIPE)
        return _spawn()

    h = Harness(Restartable(flaky_spawn, _ready))
    try:
        os.kill(h.first.pid, signal.SIGKILL)
        _until(lambda: len(attempts) == 4 and h.watch() == Phase.RUNNING)
        w = h.sup.watches()["cell:par1"]
        assert w.failures == 3 and w.restarts == 4
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.2  # doubled, then capped
        assert process_state(h.first.pid) == "gone"
    finally:
        h.sup.stop()
        for proc in h.procs.values():
            proc.kill()
            proc.wait()


def test_a_spawn_that_raises_never_ends_the_supervisor() -> None:
    calls = []

    def broken_then_fine() -> subprocess.Popen[bytes]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("address already in use")
        return _spawn()

    h = Harness(Restartable(broken_then_fine, _ready))
    try:
        os.kill(h.first.pid, signal.SIGKILL)
        _until(lambda: len(calls) == 2 and h.watch() == Phase.RUNNING)
        assert h.sup.watches()["cell:par1"].failures == 1
    finally:
        h.sup.stop()
        for proc in h.procs.values():
            proc.kill()
            proc.wait()


def test_a_held_child_stays_down(harness: Harness) -> None:
    harness.sup.hold("cell:par1")
    harness.first.kill()
    harness.first.wait()
    time.sleep(FAST.initial_s * 6)  # several backoffs: a restart would have happened by now
    assert harness.procs["cell:par1"] is harness.first and harness.watch() == Phase.HELD


def test_after_stop_nothing_is_started_again(harness: Harness) -> None:
    spawned = threading.Event()
    harness.sup._how["cell:par1"] = Restartable(lambda: (spawned.set(), _spawn())[1], _ready)
    harness.sup.stop()
    harness.first.kill()
    harness.first.wait()
    assert not spawned.wait(FAST.initial_s * 6)
    assert harness.watch() == Phase.STOPPED


def test_a_port_taken_at_restart_is_a_counted_failure_until_it_is_free() -> None:
    """The real case: the component binds a fixed port; something else holds it when it comes back."""
    import socket
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = (
        "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); print('READY', flush=True); time.sleep(60)"
    )

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", serve], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )

    procs: dict[str, subprocess.Popen[bytes]] = {}
    sup = Supervisor(procs, policy=FAST)
    first = spawn()
    _ready(first)
    sup.adopt("router:par1", first, Restartable(spawn, _ready))
    squatter = socket.socket()
    try:
        first.kill()
        first.wait()
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        _until(lambda: sup.watches()["router:par1"].failures >= 2)
        assert sup.watches()["router:par1"].phase == Phase.RESTARTING  # backing off, not crashed
        squatter.close()
        _until(lambda: sup.watches()["router:par1"].phase == Phase.RUNNING)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # back on its own port
    finally:
        squatter.close()
        sup.stop()
        for proc in procs.values():
            proc.kill()
            proc.wait()
