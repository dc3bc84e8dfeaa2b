"""The edge of `cellfed up`'s supervision: one watcher thread per supervised process waits for it to exit
(which reaps it: no zombies, so a dead component is seen dead), then starts it again with the same
command, ports and configuration, after the backoff that localfed.supervision decides.

A start that does not reach ready (its port taken, an early exit, no READY line in time) is a logged,
counted failure that backs off; it never ends the supervisor. `stop()` ends supervision first, so that
`cellfed down` can then stop every process without one being started again behind its back."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from localfed import supervision
from localfed.supervision import Backoff, Phase, Watch

log = logging.getLogger(__name__)
DEFAULT_BACKOFF = Backoff()
POLL_S = 0.2  # how soon an exit is noticed; also bounds how long stop() waits for a watcher


@dataclass(frozen=True)
class Restartable:
    """How to bring a component back: `spawn` starts its process (same argv every time) and returns at
    once; `ready` blocks until it serves, raising if it cannot (then the process is killed and retried)."""

    spawn: Callable[[], subprocess.Popen[bytes]]
    ready: Callable[[subprocess.Popen[bytes]], None]


class Supervisor:
    def __init__(
        self,
        procs: dict[str, subprocess.Popen[bytes]],
        on_change: Callable[[], None] = lambda: None,
        policy: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.procs = procs  # shared with the launcher: name -> the component's current process
        self._on_change, self._policy, self._clock = on_change, policy, clock
        self._how: dict[str, Restartable] = {}
        self._watches: dict[str, Watch] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()  # spawning and stopping exclude each other: no start after stop()
        self._stopping = threading.Event()

    def adopt(self, name: str, proc: subprocess.Popen[bytes], how: Restartable) -> None:
        """Supervise `name`, already started and ready as `proc`."""
        with self._lock:
            if self._stopping.is_set():
                return
            self.procs[name] = proc
            self._how[name] = how
            self._watches[name] = supervision.started(Watch(name), self._clock())
            thread = threading.Thread(target=self._watch, args=(name,), name=f"supervise {name}", daemon=True)
            self._threads[name] = thread
        thread.start()

    def watches(self) -> dict[str, Watch]:
        with self._lock:
            return dict(self._watches)

    def hold(self, name: str) -> None:
        """Keep `name` down from now on (a deliberate kill, not a crash)."""
        with self._lock:
            if name in self._watches:
                self._watches[name] = supervision.held(self._watches[name])

    def stop(self) -> None:
        """Ends supervision; every process is left as it is, for the caller to stop."""
        with self._lock:
            self._stopping.set()
            self._watches = {n: supervision.stopped(w) for n, w in self._watches.items()}
        for thread in self._threads.values():
            thread.join(timeout=5 * POLL_S + 1)

    def _set(self, watch: Watch) -> None:
        with self._lock:
            if self._watches[watch.name].phase in (Phase.HELD, Phase.STOPPED):
                return
            self._watches[watch.name] = watch
        self._on_change()

    def _current(self, name: str) -> Watch:
        with self._lock:
            return self._watches[name]

    def _watch(self, name: str) -> None:
        while not self._stopping.is_set():
            proc = self.procs[name]
            while proc.poll() is None:  # poll() reaps the child the moment it exits
                if self._stopping.wait(POLL_S):
                    return
            watch = self._current(name)
            if watch.phase != Phase.RUNNING:
                return  # held: kept down on purpose
            watch = supervision.exited(
                watch, self._clock(), supervision.describe_exit(proc.returncode), self._policy
            )
            log.warning(
                "%s %s; restarting in %.1fs (restart %d)",
                name,
                watch.last_exit,
                watch.delay_s,
                watch.restarts + 1,
            )
            self._set(watch)
            if not self._restart(name):
                return

    def _restart(self, name: str) -> bool:
        """Starts `name` again, backing off after each failed attempt; False once supervision ended."""
        while True:
            watch = self._current(name)
            if watch.phase != Phase.RESTARTING:
                return False
            if self._stopping.wait(max(0.0, (watch.restart_at or 0.0) - self._clock())):
                return False
            with self._lock:
                if self._stopping.is_set() or self._watches[name].phase != Phase.RESTARTING:
                    return False
                self._watches[name] = watch = supervision.restarting(self._watches[name])
                try:
                    proc = self._how[name].spawn()
                except Exception as exc:  # ports taken, a vanished interpreter: counted, retried later
                    spawn_error = f"could not start: {exc}"
                else:
                    spawn_error = ""
                    self.procs[name] = proc
            if spawn_error:
                self._failed(name, spawn_error)
                continue
            try:
                self._how[name].ready(proc)
            except Exception as exc:  # port taken, early exit, no READY in time: counted, backs off
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                self._failed(name, str(exc))
                continue
            self._set(supervision.started(self._current(name), self._clock()))
            log.warning("%s restarted (pid %d, restart %d)", name, proc.pid, self._current(name).restarts)
            return True

    def _failed(self, name: str, why: str) -> None:
        watch = supervision.start_failed(self._current(name), self._clock(), why, self._policy)
        log.warning(
            "%s failed to start: %s; next attempt in %.1fs (failure %d)",
            name,
            why,
            watch.delay_s,
            watch.failures,
        )
        self._set(watch)
