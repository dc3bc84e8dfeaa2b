"""The cell's sweep over the request claims its instances answer: write each claim again (round-robin,
so every DC learns it), and remove an instance that lost to an older claim of the same request once the
winner exists. The rules are cell.request_claims (pure); this reads the global keyspace (local DC only)
and acts through the controller, like any delete. A pass that fails part-way (the store away) is picked
up by the next one; the cursor has moved on, so the rest is covered on the next round."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from cell import lifecycle as lc
from cell import request_claims
from cell.controller import CellController
from cell.records import CellInstance
from cell.request_claims import SweepSettings
from fedlib.errors import NotFound
from replication import claims
from replication.store import IdempotencyLedger, InstanceIndex

log = logging.getLogger(__name__)


class ClaimSweep:
    def __init__(
        self,
        controller: CellController,
        ledger: IdempotencyLedger,
        index: InstanceIndex,
        regions: Callable[[], Awaitable[Sequence[str]]],
        settings: SweepSettings,
    ) -> None:
        self._c, self._ledger, self._index, self._regions = controller, ledger, index, regions
        self.settings = settings
        self._cursor = ""

    async def sweep(self) -> None:
        c, s = self._c, self.settings
        now = c.now_ms()
        todo = request_claims.due(
            c.core.all_instances(), now, cursor=self._cursor, hot_ms=s.hot_ms, batch=s.batch
        )
        self._cursor = todo.cursor
        if not todo.check:
            return
        regions = await self._regions()
        for inst in todo.check:
            await self.settle(inst, regions, now, reassert=inst.spec.instance_id in todo.reassert)

    async def settle(
        self, inst: CellInstance, regions: Sequence[str], now_ms: int, *, reassert: bool
    ) -> None:
        own, ref = request_claims.own_claim(inst), inst.spec.claim
        if own is None or ref is None:
            return
        seen = await self._ledger.lookup(own.tenant, own.request_id, sorted({*regions, own.region}))
        verdict = request_claims.judge(own, ref.assigned_at_ms, seen)
        m = self._c.metrics
        if reassert and verdict.reassert:
            left = claims.seconds_until(ref.expires_at_ms, now_ms)
            if left > 0:
                await self._ledger.reassert(own, written_at_ms=ref.assigned_at_ms, ttl_s=left)
                m.claims_reasserted.labels(m.cell).inc()
        if verdict.duplicate and await self._exists(verdict.winner.instance_id):
            winner = verdict.winner
            log.warning(
                "instance %s duplicates %s for request_id %s of tenant %s (claimed in %s first): removing it",
                own.instance_id, winner.instance_id, own.request_id, own.tenant, winner.region,
            )  # fmt: skip
            await self._c.request(
                own.instance_id,
                own.tenant,
                lc.Delete(),
                reason=f"duplicate of {winner.instance_id} for request_id {own.request_id}",
            )
            m.duplicates_removed.labels(m.cell).inc()

    async def _exists(self, instance_id: str) -> bool:
        held = self._c.core.get(instance_id)
        if held is not None:
            return held.record.state not in (lc.State.DELETING, lc.State.DELETED)
        try:
            await self._index.get(instance_id)
            return True
        except NotFound:
            return False
