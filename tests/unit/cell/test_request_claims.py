"""The cell's rules for the request claims its instances answer (cell.request_claims), as tables: who
wins, when a claim is written again, and which instances a sweep visits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cell import lifecycle as lc
from cell.records import CellInstance, ClaimRef, InstanceSpec
from cell.request_claims import due, judge, own_claim
from fedlib.flavor import Flavor
from fedlib.ids import new_instance_id
from replication.model import IdempotencyRecord

T0 = 1_750_000_000_000
SMALL = Flavor("m1.small", 1, 2048, 20)


def iid(cell: str, n: int) -> str:
    return str(new_instance_id(cell, T0 + n, n))


def claim(region: str, instance_id: str, created: int) -> IdempotencyRecord:
    return IdempotencyRecord(region, "acme", "req", instance_id, "fp", T0 + created)


OURS = claim("eu-west", iid("c1", 1), 10)


@pytest.mark.parametrize(
    ("seen", "reassert", "winner", "duplicate"),
    [
        ([OURS], True, OURS, False),  # alone: ours wins, keep re-asserting it
        ([], True, OURS, False),  # our DC lacks our own claim: it counts, and is written again
        ([OURS, claim("us-east", iid("c9", 2), 20)], True, OURS, False),  # a younger claim loses to ours
        # An older claim elsewhere wins: ours is the duplicate (still re-asserted: other DCs must see it).
        ([claim("us-east", iid("c9", 2), 5), OURS], True, claim("us-east", iid("c9", 2), 5), True),
        # The same moment: the region breaks the tie, the same way in every DC.
        ([claim("ap-south", iid("c9", 2), 10), OURS], True, claim("ap-south", iid("c9", 2), 10), True),
        # Our region's claim moved on (a spill after we were asked): we are the leftover; no re-assert.
        ([replace(OURS, instance_id=iid("c2", 3))], False, replace(OURS, instance_id=iid("c2", 3)), True),
    ],
)
def test_judge(
    seen: list[IdempotencyRecord], reassert: bool, winner: IdempotencyRecord, duplicate: bool
) -> None:
    verdict = judge(OURS, T0 + 10, seen)
    assert (verdict.reassert, verdict.winner, verdict.duplicate) == (reassert, winner, duplicate)


def test_a_claim_whose_write_time_is_unknown_is_never_reasserted() -> None:
    assert not judge(OURS, 0, []).reassert


def inst(n: int, *, created: int, state: lc.State = lc.State.ACTIVE, ttl_ms: int = 3_600_000) -> CellInstance:
    instance_id = iid("c1", n)
    ref = ClaimRef("eu-west", T0 + created, "fp", T0 + created, T0 + created + ttl_ms)
    spec = InstanceSpec(
        instance_id, "acme", f"vm{n}", SMALL, "img", T0 + created, request_id=f"r{n}", claim=ref
    )
    return CellInstance(spec, lc.Instance(instance_id, "h1", state, 1, T0 + created, None), holds_claim=True)


def test_own_claim_is_the_claim_as_the_table_holds_it() -> None:
    one = inst(1, created=0)
    assert own_claim(one) == IdempotencyRecord("eu-west", "acme", "r1", one.spec.instance_id, "fp", T0)
    assert own_claim(replace(one, spec=replace(one.spec, claim=None))) is None
    assert own_claim(replace(one, spec=replace(one.spec, request_id=""))) is None


def test_a_sweep_visits_every_live_claim_round_robin_and_the_young_every_time() -> None:
    now = T0 + 3_600_000 - 1
    old = [inst(n, created=n) for n in range(1, 8)]  # an hour old: cold
    young = inst(20, created=3_600_000 - 1_000)  # built a second ago
    gone = [inst(30, created=5, state=lc.State.DELETING), inst(31, created=5, state=lc.State.DELETED)]
    expired = inst(40, created=0, ttl_ms=1_000)
    everything = [*old, young, *gone, expired]
    visited: list[str] = []
    cursor = ""
    for _ in range(3):
        d = due(everything, now, cursor=cursor, hot_ms=60_000, batch=3)
        assert young.spec.instance_id in {i.spec.instance_id for i in d.check}  # every sweep
        assert len(d.reassert) <= 3  # bounded writes per sweep
        visited += sorted(d.reassert)
        cursor = d.cursor
    ids = sorted(i.spec.instance_id for i in [*old, young])
    assert sorted(set(visited)) == ids  # 8 live claims, 9 window slots: all re-asserted, none skipped
    assert not {i.spec.instance_id for i in [*gone, expired]} & set(visited)


def test_a_sweep_of_a_cell_without_claims_does_nothing() -> None:
    d = due([], T0, cursor="", hot_ms=60_000, batch=50)
    assert (d.check, d.reassert, d.cursor) == ([], frozenset(), "")


def test_a_burst_of_young_instances_costs_a_bounded_number_of_checks() -> None:
    now = T0 + 100_000
    burst = [inst(n, created=100_000 - n) for n in range(1, 200)]  # 199 built in the last 0.2 s
    d = due(burst, now, cursor="", hot_ms=60_000, batch=10)
    assert len(d.check) == 20 and len(d.reassert) == 10
    newest = {i.spec.instance_id for i in burst[:10]}
    assert newest <= {i.spec.instance_id for i in d.check}
