"""The create path's reading of what a cell said, pinned: a definite refusal moves the claim to an id
naming the next candidate and builds there; an outcome unknown (a deadline, a connection lost after
sending) stops, so the retry resumes at the same cell; anything else is the answer. And what a replay
does when the first attempt's instance is not visible yet."""

from __future__ import annotations

from typing import Any

import pytest
from cellfed.v1 import common_pb2, compute_pb2

from cellapi.router.create import Creator, may_have_built
from fedlib import errors
from fedlib.catalog import FLAVORS
from fedlib.ids import parse_instance_id
from replication.memory import ManualClock, MemoryIdempotency
from replication.model import Cell, CellState

CELLS = [Cell(f"c{n}", f"s{n}", "eu", f"127.0.0.1:{7000 + n}", CellState.ENABLED, 1) for n in (1, 2, 3)]
FLAVOR = FLAVORS["m1.tiny"]


class ScriptedCells:
    """c1 answers `first`, `refusing` cells refuse for lack of room, the others build."""

    def __init__(self, first: Exception, refusing: tuple[str, ...] = ()) -> None:
        self.first, self.refusing = first, refusing
        self.asked: list[tuple[str, str]] = []  # (cell, instance id asked for)

    async def call(self, cell: Cell, method: str, request: Any, timeout_s: float) -> common_pb2.Instance:
        assert method == "BuildInstance"
        self.asked.append((cell.cell_id, request.instance_id))
        assert parse_instance_id(request.instance_id).home_cell == cell.cell_id  # ids name their cell
        if cell.cell_id == "c1":
            raise self.first
        if cell.cell_id in self.refusing:
            raise errors.ResourceExhausted(f"{cell.cell_id} is full")
        return common_pb2.Instance(instance_id=request.instance_id, cell=cell.cell_id)


class Fixture:
    def __init__(self, cells: ScriptedCells, *, region: str = "eu", lookup: Any = None) -> None:
        self.clock = ManualClock()
        self.ledger = MemoryIdempotency(self.clock.now_ms, "eu")
        self.cells, self.outcomes = cells, []  # type: ScriptedCells, list[str]

        async def not_found(iid: str, tenant: str) -> common_pb2.Instance:
            raise errors.NotFound(f"instance {iid} not found")

        self.creator = Creator(
            region=region, site_id="s1", ledger=self.ledger.for_region(region), cells=cells,  # type: ignore[arg-type]
            clock_ms=self.clock.now_ms, timeout_s=1.0, ttl_s=600, peer_regions=lambda: ["eu", "us"],
            outcome=self.outcomes.append, lookup=lookup or not_found,
            cell_of={c.cell_id: c for c in CELLS}.get,
        )  # fmt: skip

    async def create(self, request_id: str = "r") -> common_pb2.Instance | errors.CellfedError:
        request = compute_pb2.CreateInstanceRequest(request_id=request_id, display_name="w", flavor="m1.tiny")
        try:
            return await self.creator.create("t", request, FLAVOR, "fp", CELLS, "")
        except errors.CellfedError as exc:
            return exc

    async def claim_now_names(self, request_id: str = "r") -> str:
        (record,) = await self.ledger.lookup("t", request_id, ["eu", "us"])
        return record.instance_id


SPILLED = [
    errors.ResourceExhausted("no room"),
    errors.Unavailable("cell c1 is drained"),
    errors.Unreachable("site s1 (cell c1) is unavailable: failed to connect"),
    errors.FailedPrecondition("no host ready"),
    errors.NotFound("image not here"),
]


@pytest.mark.parametrize("refusal", SPILLED, ids=lambda e: type(e).__name__)
async def test_a_refusal_moves_the_claim_and_builds_in_the_next_cell(refusal: errors.CellfedError) -> None:
    f = Fixture(ScriptedCells(refusal))
    got = await f.create()
    assert [c for c, _ in f.cells.asked] == ["c1", "c2"] and f.outcomes == ["spilled"]
    assert isinstance(got, common_pb2.Instance) and got.cell == "c2"
    assert await f.claim_now_names() == got.instance_id  # a replay is sent to c2, never to c1 again


@pytest.mark.parametrize(
    "unknown",
    [errors.DeadlineExceeded("site s1 (cell c1) did not answer"), errors.ConnectionLost("c1: Socket closed")],
    ids=lambda e: type(e).__name__,
)
async def test_an_outcome_unknown_stops_with_unavailable_and_asks_no_other_cell(
    unknown: errors.CellfedError,
) -> None:
    f = Fixture(ScriptedCells(unknown))
    got = await f.create()
    assert [c for c, _ in f.cells.asked] == ["c1"] and not f.outcomes
    assert type(got) is errors.Unavailable and "retry with the same request_id" in got.message
    # The retry goes back to c1 with the same id, and only there.
    first_id = f.cells.asked[0][1]
    f.cells.first = errors.DeadlineExceeded("still silent")
    await f.create()
    assert f.cells.asked[1:] == [("c1", first_id)] and await f.claim_now_names() == first_id


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
    f = Fixture(ScriptedCells(answer))
    got = await f.create()
    assert [c for c, _ in f.cells.asked] == ["c1"] and not f.outcomes and got is answer


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (errors.ResourceExhausted("no room"), errors.ResourceExhausted),  # full everywhere: no retry soon
        (errors.FailedPrecondition("drained"), errors.ResourceExhausted),
        (errors.Unavailable("not ready"), errors.Unavailable),  # one cell down: retrying may work
        (errors.Unreachable("no route"), errors.Unavailable),
    ],
    ids=lambda v: getattr(v, "__name__", type(v).__name__),
)
async def test_when_every_cell_refuses_unavailability_is_retryable(
    first: errors.CellfedError, expected: type[errors.CellfedError]
) -> None:
    f = Fixture(ScriptedCells(first, refusing=("c2", "c3")))
    got = await f.create()
    assert [c for c, _ in f.cells.asked] == ["c1", "c2", "c3"] and f.outcomes == ["refused"]
    assert type(got) is expected and "c1" in got.message and "c3" in got.message


async def test_a_replay_that_finds_nothing_resumes_at_the_cell_its_claim_names() -> None:
    f = Fixture(ScriptedCells(errors.ResourceExhausted("no room")))
    first = await f.create()
    assert isinstance(first, common_pb2.Instance) and first.cell == "c2"
    f.cells.first = AssertionError("a replay must not go back to c1")  # type: ignore[assignment]
    again = await f.create()  # the lookup finds nothing (index not written yet): ask c2, the same id
    assert isinstance(again, common_pb2.Instance) and again.instance_id == first.instance_id
    assert f.cells.asked[-1] == ("c2", first.instance_id)


async def test_a_replay_in_another_region_never_moves_the_claim() -> None:
    home = Fixture(ScriptedCells(errors.DeadlineExceeded("late")))
    await home.create()  # claimed in eu, naming c1, outcome unknown
    f = Fixture(ScriptedCells(errors.ResourceExhausted("no room")), region="us")
    f.ledger, f.clock = home.ledger, home.clock
    f.creator._ledger = home.ledger.for_region("us")
    got = await f.create()
    assert [c for c, _ in f.cells.asked] == ["c1"]  # no spill: only eu may move eu's claim
    assert isinstance(got, errors.ResourceExhausted)
    assert await home.claim_now_names() == home.cells.asked[0][1]


async def test_a_move_lost_to_another_attempt_stops_without_building() -> None:
    f = Fixture(ScriptedCells(errors.ResourceExhausted("no room")))
    ledger = f.creator._ledger

    class Racing:  # another attempt moves the claim between our refusal and our move
        async def claim(self, *a: Any, **k: Any) -> Any:
            return await ledger.claim(*a, **k)

        async def reassign(self, record: Any, instance_id: str, *, ttl_s: int) -> Any:
            await ledger.reassign(record, "c3.01jz8k3m5q7r9t1v3x5z7b9d1f", ttl_s=ttl_s)
            return await ledger.reassign(record, instance_id, ttl_s=ttl_s)

    f.creator._ledger = Racing()  # type: ignore[assignment]
    got = await f.create()
    assert [c for c, _ in f.cells.asked] == ["c1"]
    assert type(got) is errors.Unavailable and "another attempt" in got.message


@pytest.mark.parametrize(
    ("error", "expected"),
    [(e, False) for e in SPILLED]
    + [
        (errors.ConnectionLost("reset"), True),
        (errors.DeadlineExceeded("late"), True),
        (errors.StoreError("?"), True),
    ],
    ids=lambda v: type(v).__name__,
)
def test_may_have_built(error: errors.CellfedError, expected: bool) -> None:
    assert may_have_built(error) is expected
