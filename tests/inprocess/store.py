"""The global keyspace as the harness's processes see it: the shared in-memory twin, with an index whose
writes a test can hold back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from replication.memory import MemoryIndex
from replication.model import IndexEntry


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
