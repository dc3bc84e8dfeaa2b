"""Finds the cell that owns an instance: the home cell encoded in its id first (no lookup), the index
when that cell does not know it (spilled or moved), with a small cache of what the index said."""

from __future__ import annotations

from collections import OrderedDict

from cellapi.router.directory import Directory
from cellapi.router.metrics import RouterMetrics
from fedlib.errors import NotFound
from fedlib.ids import InstanceId
from replication.model import Cell, IndexEntry
from replication.store import InstanceIndex

_CACHE_SIZE = 100_000


class Owners:
    def __init__(self, directory: Directory, index: InstanceIndex, metrics: RouterMetrics) -> None:
        self._directory, self._index, self._metrics = directory, index, metrics
        self._cache: OrderedDict[str, str] = OrderedDict()

    def first_guess(self, iid: InstanceId) -> Cell:
        """The cell to ask first: a cached owner, else the home cell in the id."""
        cells = self._directory.snapshot.cells
        cached = self._cache.get(str(iid))
        if cached is not None and cached in cells:
            self._cache.move_to_end(str(iid))
            self._count("cache")
            return cells[cached]
        if iid.home_cell in cells:
            self._count("id")
            return cells[iid.home_cell]
        raise NotFound(f"instance {iid} not found", field="name")

    async def from_index(self, iid: InstanceId) -> tuple[Cell | None, IndexEntry]:
        """The index's owner (the authority for moved instances); NotFound when the index has no row."""
        self._count("index")
        entry = await self._index.get(str(iid))
        cell = self._directory.snapshot.cells.get(entry.owner_cell)
        if cell is not None:
            self._remember(str(iid), cell.cell_id)
        return cell, entry

    def _remember(self, instance_id: str, cell_id: str) -> None:
        self._cache[instance_id] = cell_id
        self._cache.move_to_end(instance_id)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _count(self, source: str) -> None:
        self._metrics.index_cache.labels(self._metrics.site, source).inc()
