"""The cell's full re-assert: a paced sweep (cell.reassert_pacing) that writes again the index and listing
rows of every live instance, so a replica that missed a write (a WAN cut, a hint Cassandra never replayed)
heals within one period, however long the cut was. The rows carry the owner's updated_at as their write
timestamp, so a re-assert never overrides newer data; the publisher serves changes first.

The shell only: each tick reads the live ids, asks the pacing what to visit, hands those to the publisher,
and records a finished sweep's duration. It holds back while the publisher still has re-asserts queued
(a slow or unreachable store), so a cut costs memory for one batch, not for the whole cell."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cell import lifecycle as lc
from cell import reassert_pacing as pacing
from cell.controller import CellController
from cell.publisher import Publisher

log = logging.getLogger(__name__)


class Reasserter:
    def __init__(
        self,
        controller: CellController,
        publisher: Publisher,
        pace: pacing.Pacing,
        *,
        on_sweep: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._c, self._publisher, self._pace, self._on_sweep = controller, publisher, pace, on_sweep
        self._sweep: pacing.Sweep | None = None
        self.sweeps_done = 0

    def live_ids(self) -> list[str]:
        return sorted(
            i.spec.instance_id for i in self._c.core.all_instances() if i.record.state is not lc.State.DELETED
        )

    def tick(self) -> int:
        """One pacing step now; returns how many instances it queued for a re-assert."""
        now, ids = self._c.now_ms(), self.live_ids()
        if self._sweep is None:
            self._sweep = pacing.start(now, ids)
        if self._publisher.backlog:
            # The last batch is not written yet: visiting more would only queue them. The spread catches
            # up (within the rate limit) once the store answers again.
            return 0
        step = pacing.step(self._pace, self._sweep, ids, now)
        self._sweep = step.sweep
        for instance_id in step.visit:
            inst = self._c.core.get(instance_id)
            if inst is not None:
                self._publisher.reassert(inst)
        if step.finished is not None:
            self.sweeps_done += 1
            seconds = (now - step.finished.started_ms) / 1000
            self._on_sweep(seconds)
            log.debug("re-assert sweep of %d instances done in %.1fs", step.finished.visited, seconds)
        return len(step.visit)

    async def run(self, tick_s: float = 1.0) -> None:
        while True:
            try:
                self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one bad pass stop convergence
                log.warning("re-assert tick failed: %s", exc)
            await asyncio.sleep(tick_s)
