"""Spread groups ask every reachable cell through the one fan-out: a slow or down cell counts as holding
none, and a site with several cells holds a member when any of its cells does."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from cellfed.v1 import cell_pb2, common_pb2

from cellapi.router.groups import GroupSites
from replication.model import Cell, CellState


def cell(cell_id: str, site: str) -> Cell:
    return Cell(cell_id, site, "eu", "127.0.0.1:7000", CellState.ENABLED, 1)


CELLS = [cell("par1-c1", "par1"), cell("par1-c2", "par1"), cell("nyc1-c1", "nyc1"), cell("sin1-c1", "sin1")]
HOLDS = {"par1-c1"}


class Cells:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def call(self, c: Cell, method: str, request: Any, timeout_s: float) -> Any:
        self.asked.append(c.cell_id)
        if c.cell_id == "nyc1-c1":
            await asyncio.sleep(30)  # holds one, but too late
        found = [common_pb2.Instance(instance_id=f"{c.cell_id}.x")] if c.cell_id in HOLDS else []
        return cell_pb2.CellListInstancesResponse(instances=found)


async def test_any_cell_of_a_site_counts_and_slow_or_down_cells_count_as_none() -> None:
    directory = SimpleNamespace(snapshot=SimpleNamespace(cells={c.cell_id: c for c in CELLS}))
    cells = Cells()
    groups = GroupSites(directory, cells, lambda cell_id: cell_id != "sin1-c1", 0.2)  # type: ignore[arg-type]
    assert await groups.holding("acme", "web") == {"par1"}
    assert sorted(cells.asked) == ["nyc1-c1", "par1-c1", "par1-c2"]
    groups.remember("acme", "web", "sin1")
    assert await groups.holding("acme", "web") == {"par1", "sin1"}
