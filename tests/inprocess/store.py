"""The global keyspace as the harness's processes see it: the shared in-memory twin, with an index whose
writes a test can hold back and claims whose replication between regions a test can cut."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from replication import claims
from replication.memory import MemoryIdempotency, MemoryIndex
from replication.model import ClaimOutcome, IdempotencyRecord, IndexEntry


class HeldIndex:
    """The instance index, with writes that can be held back: a cell's publish that has not landed yet
    (replication lag, a slow DC), for as long as a test needs."""

    def __init__(self, inner: MemoryIndex) -> None:
        self._inner = inner
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def put(self, entry: IndexEntry) -> None:
        await self._open.wait()
        await self._inner.put(entry)

    async def get(self, instance_id: str) -> IndexEntry:
        return await self._inner.get(instance_id)

    async def delete(self, instance_id: str, *, at_ms: int) -> None:
        await self._open.wait()
        await self._inner.delete(instance_id, at_ms=at_ms)


@dataclass
class StoreView:
    """The shared twin as one region's processes see it (the twin has no replication lag)."""

    directory: Any
    routers: Any
    capacity: Any
    index: Any
    listing: Any
    idempotency: Any
    revocations: Any


class ClaimsNet:
    """How claims replicate between the harness's regions. While `cut`, a claim written in one region is
    not visible in the others; `heal()` delivers them, unless `lose_writes`: then they stay unseen (hints
    lost) until written again (the owning cell's re-assert)."""

    def __init__(self) -> None:
        self.cut = False
        self.unseen: set[tuple[str, str, str]] = set()  # (tenant, request_id, region) outside its region

    def heal(self, *, lose_writes: bool = False) -> None:
        self.cut = False
        if not lose_writes:
            self.unseen.clear()


class RegionClaims:
    """One region's view of the shared claims, through a ClaimsNet."""

    def __init__(self, inner: MemoryIdempotency, region: str, net: ClaimsNet) -> None:
        self._inner, self._region, self._net = inner, region, net

    def _visible(self, record: IdempotencyRecord) -> bool:
        key = (record.tenant, record.request_id, record.region)
        return record.region == self._region or key not in self._net.unseen

    async def claim(
        self, record: IdempotencyRecord, *, ttl_s: int, peer_regions: Sequence[str] = ()
    ) -> ClaimOutcome:
        regions = [*peer_regions, self._region] if peer_regions else []
        earlier = await self.lookup(record.tenant, record.request_id, regions) if regions else []
        if earlier:
            return claims.answer_existing(record, earlier[0])
        outcome = await self._inner.claim(record, ttl_s=ttl_s)
        if outcome.won and self._net.cut:
            self._net.unseen.add((record.tenant, record.request_id, record.region))
        return outcome

    async def reassign(self, record: IdempotencyRecord, instance_id: str, *, ttl_s: int) -> IdempotencyRecord:
        return await self._inner.reassign(record, instance_id, ttl_s=ttl_s)

    async def reassert(self, record: IdempotencyRecord, *, written_at_ms: int, ttl_s: int) -> None:
        await self._inner.reassert(record, written_at_ms=written_at_ms, ttl_s=ttl_s)
        if not self._net.cut:  # written again while the link is up: it reaches every region
            self._net.unseen.discard((record.tenant, record.request_id, record.region))

    async def lookup(self, tenant: str, request_id: str, regions: Sequence[str]) -> list[IdempotencyRecord]:
        return [r for r in await self._inner.lookup(tenant, request_id, regions) if self._visible(r)]
