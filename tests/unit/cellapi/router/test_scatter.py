"""The one fan-out: each cell's outcome as a value within one deadline, and nothing left running."""

from __future__ import annotations

import asyncio
import time

import pytest

from cellapi.router.scatter import Answered, Failed, Skipped, TimedOut, scatter_gather
from fedlib import errors
from replication.model import Cell, CellState

CELLS = {
    n: Cell(f"c{n}", f"s{n}", "eu", f"127.0.0.1:{7000 + i}", CellState.ENABLED, 1)
    for i, n in enumerate("abcde")
}


class Cells:
    """a answers, b is slow, c fails, d is known down, e has a bug."""

    def __init__(self) -> None:
        self.called: list[str] = []
        self.cancelled: list[str] = []

    def is_up(self, cell_id: str) -> bool:
        return cell_id != "cd"

    async def call(self, cell: Cell) -> str:
        self.called.append(cell.cell_id[1])
        if cell.cell_id == "cb":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.append(cell.cell_id[1])
                raise
        if cell.cell_id == "cc":
            raise errors.Unavailable(f"site {cell.site_id} is unavailable")
        if cell.cell_id == "ce":
            raise KeyError("a bug")
        return f"hello from {cell.cell_id[1]}"


async def test_each_cell_gets_its_own_outcome_within_the_deadline_and_nothing_leaks() -> None:
    cells, before = Cells(), asyncio.all_tasks()
    started = time.monotonic()
    got = await scatter_gather(CELLS.values(), cells.call, timeout_s=0.2, is_up=cells.is_up)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.0
    a, b, c, d, e = got.outcomes
    assert a == Answered(CELLS["a"], "hello from a")
    assert b == TimedOut(CELLS["b"]) and cells.cancelled == ["b"]
    assert isinstance(c, Failed) and type(c.error) is errors.Unavailable and c.cell == CELLS["c"]
    assert d == Skipped(CELLS["d"]) and "d" not in cells.called
    assert isinstance(e, Failed) and isinstance(e.error, KeyError)
    assert got.answers() == [a] and [x.cell_id for x in got.missing()] == ["cb", "cc", "cd", "ce"]
    assert asyncio.all_tasks() <= before  # the slow call did not outlive the deadline


async def test_all_answer_quickly_and_the_deadline_costs_nothing() -> None:
    cells = Cells()
    started = time.monotonic()
    got = await scatter_gather([CELLS["a"], CELLS["a"]], cells.call, timeout_s=5.0, is_up=cells.is_up)
    assert time.monotonic() - started < 1.0 and len(got.answers()) == 2 and not got.missing()


async def test_nothing_to_ask_is_an_empty_answer() -> None:
    got = await scatter_gather([], Cells().call, timeout_s=0.1, is_up=lambda _: True)
    assert got.outcomes == () and got.answers() == [] and got.missing() == []


async def test_the_deadline_is_one_for_all_calls_not_one_each() -> None:
    async def slow_then_answer(cell: Cell) -> str:
        await asyncio.sleep(0.15 if cell.cell_id == "ca" else 0.3)
        return cell.cell_id

    started = time.monotonic()
    got = await scatter_gather(
        [CELLS["a"], CELLS["b"]], slow_then_answer, timeout_s=0.2, is_up=lambda _: True
    )
    assert time.monotonic() - started < 0.3
    assert [type(o) for o in got.outcomes] == [Answered, TimedOut]


async def test_cancelling_the_fan_out_cancels_every_call() -> None:
    cells, before = Cells(), asyncio.all_tasks()
    task = asyncio.create_task(scatter_gather([CELLS["b"]], cells.call, timeout_s=30, is_up=cells.is_up))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cells.cancelled == ["b"] and asyncio.all_tasks() <= before
