"""The chaos load's client behaviour: a create is retried with the SAME request id and acknowledged once;
a delete whose first answer was lost and whose retry finds nothing counts as done; a definite refusal
is not retried."""

from __future__ import annotations

import random
from typing import Any

import pytest
from cellfed.v1 import common_pb2

from fedlib.errors import FailedPrecondition, NotFound, Unavailable
from localfed.bench import chaos_load
from localfed.bench.chaos_load import Recorder, choose, create, delete, once


class FakeClient:
    def __init__(self, script: list[Any]) -> None:
        self.script, self.requests = list(script), []  # each entry: an answer or an error to raise

    async def _next(self, request: Any) -> Any:
        self.requests.append(request)
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def create(self, request: Any) -> Any:
        return await self._next(request)

    async def action(self, verb: str, iid: str) -> Any:
        return await self._next((verb, iid))


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos_load, "RETRY_BACKOFF_S", (0.0, 0.0, 0.0))


async def test_a_create_is_retried_with_the_same_request_id_and_acknowledged_once() -> None:
    inst = common_pb2.Instance(instance_id="par1-c1.x")
    client = FakeClient([Unavailable("router down"), Unavailable("cell down"), inst])
    rec = Recorder(lambda: 1.0)
    await create("par1", client, rec)  # type: ignore[arg-type]
    assert len({r.request_id for r in client.requests}) == 1 and len(client.requests) == 3
    assert [a.instance_id for a in rec.acks] == ["par1-c1.x"] and rec.pools["par1"] == ["par1-c1.x"]
    assert rec.ops[0].ok and rec.ops[0].attempts == 3
    assert rec.answers[("acme", client.requests[0].request_id)] == {"par1-c1.x"}


async def test_a_create_that_never_succeeds_is_one_failed_operation_and_no_ack() -> None:
    client = FakeClient([Unavailable("down")] * 4)
    rec = Recorder(lambda: 1.0)
    await create("nyc1", client, rec)  # type: ignore[arg-type]
    assert rec.acks == [] and len(rec.ops) == 1 and not rec.ops[0].ok
    assert rec.ops[0].error == "UNAVAILABLE" and rec.ops[0].attempts == 4


async def test_a_delete_whose_retry_finds_nothing_was_done_by_the_lost_attempt() -> None:
    rec = Recorder(lambda: 2.0)
    rec.pools["sin1"].append("i1")
    await delete("sin1", FakeClient([Unavailable("lost answer"), NotFound("gone")]), rec, "i1")  # type: ignore[arg-type]
    assert rec.deleted == {"i1": 2.0} and rec.pools["sin1"] == [] and rec.ops[0].ok


async def test_a_first_not_found_on_delete_is_not_an_acknowledgement() -> None:
    rec = Recorder(lambda: 2.0)
    rec.pools["sin1"].append("i1")
    await delete("sin1", FakeClient([NotFound("never heard of it")]), rec, "i1")  # type: ignore[arg-type]
    assert rec.deleted == {} and not rec.ops[0].ok and rec.ops[0].error == "NOT_FOUND"


async def test_a_stop_refused_by_the_state_is_served_and_not_retried() -> None:
    rec = Recorder(lambda: 3.0)
    client = FakeClient([FailedPrecondition("still BUILDING")])
    await once("par1", client, rec, "stop", "i1")  # type: ignore[arg-type]
    assert rec.ops[0].ok and rec.ops[0].error == "FAILED_PRECONDITION" and len(client.requests) == 1


def test_choose_fills_a_site_first_and_stops_creating_at_the_cap() -> None:
    rng = random.Random(0)
    assert {choose(rng, 1, 8) for _ in range(50)} == {"create"}
    assert "create" not in {choose(rng, 8, 8) for _ in range(200)}
    assert "create" in {choose(rng, 4, 8) for _ in range(200)}
