"""The create path's reading of what a cell said, pinned: a refusal spills to the next candidate, a
deadline stops (the cell may have built it), anything else is the answer. A connection lost after
sending still spills today although it may have built the instance (`may_have_built` says so)."""

from __future__ import annotations

from typing import Any

import pytest
from cellfed.v1 import common_pb2, compute_pb2

from cellapi.router.create import Creator, may_have_built
from fedlib import errors
from fedlib.catalog import FLAVORS
from replication.model import Cell, CellState

CELLS = [Cell(f"c{n}", f"s{n}", "eu", f"127.0.0.1:{7000 + n}", CellState.ENABLED, 1) for n in (1, 2)]
FLAVOR = FLAVORS["m1.tiny"]


class ScriptedCells:
    def __init__(self, first: Exception) -> None:
        self.first, self.asked = first, []  # type: list[str]

    async def call(self, cell: Cell, method: str, request: Any, timeout_s: float) -> common_pb2.Instance:
        self.asked.append(cell.cell_id)
        if cell.cell_id == "c1":
            raise self.first
        return common_pb2.Instance(instance_id=request.instance_id, cell=cell.cell_id)


async def build_after(first: Exception) -> tuple[list[str], list[str], common_pb2.Instance | Exception]:
    cells, outcomes = ScriptedCells(first), []  # type: ScriptedCells, list[str]
    creator = Creator(
        region="eu", site_id="s1", ledger=None, cells=cells, clock_ms=lambda: 0, timeout_s=1.0,  # type: ignore[arg-type]
        ttl_s=60, peer_regions=list, outcome=outcomes.append, lookup=None,  # type: ignore[arg-type]
    )  # fmt: skip
    request = compute_pb2.CreateInstanceRequest(request_id="r", display_name="w", flavor="m1.tiny")
    try:
        got: common_pb2.Instance | Exception = await creator._build("t", request, FLAVOR, "c1.x", CELLS)
    except errors.CellfedError as exc:
        got = exc
    return cells.asked, outcomes, got


SPILLED = [
    errors.ResourceExhausted("no room"),
    errors.Unavailable("cell c1 is drained"),
    errors.Unreachable("site s1 (cell c1) is unavailable: failed to connect"),
    errors.ConnectionLost("c1: Socket closed"),  # may have built it; spills, for now
    errors.FailedPrecondition("no host ready"),
    errors.NotFound("image not here"),
]


@pytest.mark.parametrize("refusal", SPILLED, ids=lambda e: type(e).__name__)
async def test_a_refusal_spills_to_the_next_candidate(refusal: errors.CellfedError) -> None:
    asked, outcomes, got = await build_after(refusal)
    assert asked == ["c1", "c2"] and outcomes == ["spilled"]
    assert isinstance(got, common_pb2.Instance) and got.cell == "c2"


async def test_a_deadline_stops_with_unavailable_and_asks_no_other_cell() -> None:
    asked, outcomes, got = await build_after(errors.DeadlineExceeded("site s1 (cell c1) did not answer"))
    assert asked == ["c1"] and not outcomes
    assert type(got) is errors.Unavailable and "retry with the same request_id" in got.message


@pytest.mark.parametrize(
    "answer",
    [
        errors.AlreadyExists("taken"),
        errors.InvalidArgument("bad"),
        errors.Aborted("race"),
        errors.StoreError("?"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_anything_else_is_the_answer(answer: errors.CellfedError) -> None:
    asked, outcomes, got = await build_after(answer)
    assert asked == ["c1"] and not outcomes and got is answer


@pytest.mark.parametrize(
    ("error", "expected"),
    [(e, type(e) is errors.ConnectionLost) for e in SPILLED]
    + [(errors.DeadlineExceeded("late"), True), (errors.StoreError("?"), True)],
    ids=lambda v: type(v).__name__,
)
def test_may_have_built(error: errors.CellfedError, expected: bool) -> None:
    assert may_have_built(error) is expected
