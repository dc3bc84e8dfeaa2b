"""The cell's full re-assert: a paced sweep (cell.reassert_pacing) that writes again the index and listing
rows of every live instance, so a replica that missed a write (a WAN cut, a hint Cassandra never replayed)
heals within one period, however long the cut was. The rows carry the owner's updated_at as their write
timestamp, so a re-assert never overrides newer data; the publisher serves changes first.

Each sweep also rotates the cell's listing generation (replication.listing_gens): it opens one before its
first visit and commits it once every visit is written, so the listing partitions readers read never
carry more than about one period of deletes. A sweep with a failed write does not commit: the next sweep
refills the same generation.

The shell only: each tick reads the live ids, asks the pacing what to visit, hands those to the publisher.
It holds back while the publisher still has re-asserts queued (a slow or unreachable store), so a cut
costs memory for one batch, not for the whole cell."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cell import lifecycle as lc
from cell import reassert_pacing as pacing
from cell.controller import CellController
from cell.publisher import Publisher
from replication.store import TenantListing

log = logging.getLogger(__name__)


class Reasserter:
    def __init__(
        self,
        controller: CellController,
        publisher: Publisher,
        listing: TenantListing,
        pace: pacing.Pacing,
        *,
        on_sweep: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._c, self._publisher, self._listing = controller, publisher, listing
        self._pace, self._on_sweep = pace, on_sweep
        self._sweep: pacing.Sweep | None = None
        self._to_commit: pacing.Sweep | None = None  # finished, waiting for its last writes
        self._failures_at_open = self._deletes_at_open = 0
        self.sweeps_done = 0
        self.commits = 0

    def live_ids(self) -> list[str]:
        return sorted(
            i.spec.instance_id for i in self._c.core.all_instances() if i.record.state is not lc.State.DELETED
        )

    async def tick(self) -> int:
        """One pacing step now; returns how many instances it queued for a re-assert."""
        if self._publisher.backlog:
            # The last batch is not written yet: visiting more would only queue them. The spread catches
            # up (within the rate limit) once the store answers again.
            return 0
        if self._to_commit is not None:
            await self._commit(self._to_commit)
        now, ids = self._c.now_ms(), self.live_ids()
        if self._sweep is None:
            self._sweep = pacing.start(now, ids)
            await self._open(now)
        deletes = self._publisher.deletes_published - self._deletes_at_open
        step = pacing.step(self._pace, self._sweep, ids, now, deletes)
        if step.started:
            await self._open(now)
        self._sweep = step.sweep
        for instance_id in step.visit:
            inst = self._c.core.get(instance_id)
            if inst is not None:
                self._publisher.reassert(inst)
        if step.finished is not None:
            self._to_commit = step.finished  # committed once the publisher has written this last batch
            if not step.visit:
                await self._commit(step.finished)
        return len(step.visit)

    async def _open(self, now: int) -> None:
        await self._listing.open_generation(self._c.settings.cell_id, at_ms=now)
        self._failures_at_open = self._publisher.reassert_failures
        self._deletes_at_open = self._publisher.deletes_published

    async def _commit(self, finished: pacing.Sweep) -> None:
        self._to_commit = None
        now = self._c.now_ms()
        self.sweeps_done += 1
        seconds = (now - finished.started_ms) / 1000
        self._on_sweep(seconds)
        if self._publisher.reassert_failures != self._failures_at_open:
            log.warning("re-assert sweep had failed writes: its listing generation waits for the next sweep")
            return
        everyone = self._c.core.all_instances()
        live = {i.spec.tenant for i in everyone if i.record.state is not lc.State.DELETED}
        gone = {i.spec.tenant for i in everyone} - live
        await self._listing.commit_generation(
            self._c.settings.cell_id, sorted(live), at_ms=now, gone=sorted(gone)
        )
        self.commits += 1
        log.debug("re-assert sweep of %d instances done in %.1fs", finished.visited, seconds)

    async def run(self, tick_s: float = 1.0) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one bad pass stop convergence
                log.warning("re-assert tick failed: %s", exc)
            await asyncio.sleep(tick_s)
