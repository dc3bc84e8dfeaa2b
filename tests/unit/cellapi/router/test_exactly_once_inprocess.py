"""Exactly one instance per (tenant, request id) when a client's create reaches routers in several regions
at once (a failover), while claims cannot replicate between them, and when one region's claim never
reaches another (hints lost): the cells settle it once the claims are visible, the oldest claim wins,
and every router then answers the request with the winner (tests.inprocess.harness; cell.request_claims)."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from cellfed.v1 import common_pb2, compute_pb2

from tests.inprocess.harness import SITES, CellSpec, Harness, SiteSpec, cells, create_request

SIN1 = SiteSpec("sin1", "ap-south", 1.35, 103.82)
THREE_REGIONS = (*SITES, SIN1)


def three_region_cells() -> list[CellSpec]:
    return [*cells(), CellSpec("sin1-c1", "sin1")]


async def live_holders(h: Harness, request_id: str) -> dict[str, str]:
    """instance id -> cell, for every instance of the request that is not deleted or going."""
    out = {}
    for cell in h.cells.values():
        for row in await cell.records.load_instances():
            if row.status not in ("DELETING", "DELETED") and f'"request_id": "{request_id}"' in row.spec_json:
                out[row.instance_id] = cell.cell_id
    return out


async def settled(h: Harness, request_id: str) -> dict[str, str]:
    """Lets the cells' claim sweeps run and their agents carry out what they decide, until one is left."""
    for _ in range(10):
        await h.settle_claims()
        await h.advance(1.0)  # fake agents act on the desired state they were sent
        holders = await live_holders(h, request_id)
        if len(holders) <= 1:
            return holders
    return await live_holders(h, request_id)


@pytest.mark.parametrize("regions", [2, 3])
@pytest.mark.parametrize("round_", range(6))
async def test_one_request_id_at_routers_in_several_regions_at_once_ends_as_one_instance(
    regions: int, round_: int
) -> None:
    routers = ["par1", "nyc1", "sin1"][:regions]
    async with Harness.running(THREE_REGIONS, three_region_cells(), routers=routers) as h:
        h.claims_net.cut = True  # the claims cannot replicate: each region claims for itself
        request = create_request(f"failover-{round_}", request_id=uuid.uuid4().hex)
        # The client's attempts arrive a few ms apart, in a different order each round.
        order = routers[round_ % regions :] + routers[: round_ % regions]
        made: dict[str, common_pb2.Instance] = {}
        for n, site in enumerate(order):
            made[site] = await h.api(site).CreateInstance(request)
            if n < len(order) - 1:
                await h.advance(0.005)
        assert len({i.instance_id for i in made.values()}) == regions  # each region built its own
        h.claims_net.heal()
        holders = await settled(h, request.request_id)
        winner = made[order[0]]  # the oldest claim
        assert holders == {winner.instance_id: winner.cell}
        for site in routers:  # every router, the losers' included, now answers with the winner
            again = await h.api(site).CreateInstance(request)
            assert again.instance_id == winner.instance_id
        assert await live_holders(h, request.request_id) == {winner.instance_id: winner.cell}


async def test_a_claim_another_region_never_received_is_reasserted_and_the_duplicate_settles() -> None:
    async with Harness.running(SITES, cells(), routers=["par1", "nyc1"]) as h:
        h.claims_net.cut = True
        request = create_request("lost-hint", request_id=uuid.uuid4().hex)
        first = await h.api("par1").CreateInstance(request)
        await h.advance(0.01)
        second = await h.api("nyc1").CreateInstance(request)
        assert first.instance_id != second.instance_id
        h.claims_net.heal(lose_writes=True)  # the link is back but neither claim ever crossed it
        us = h.view("us-east").idempotency
        assert [r.region for r in await us.lookup("acme", request.request_id, ["eu-west", "us-east"])] == [
            "us-east"
        ]
        holders = await settled(h, request.request_id)
        assert holders == {first.instance_id: first.cell}  # eu's re-assert reached us-east; us-east's went
        again = await h.api("nyc1").CreateInstance(request)
        assert again.instance_id == first.instance_id


async def test_a_duplicate_is_not_removed_before_the_winner_exists() -> None:
    settings = {"cell_timeout_s": 0.2}
    async with Harness.running(SITES, cells(), routers=["par1", "nyc1"], router_settings=settings) as h:
        h.claims_net.cut = True
        # eu's attempt claims first, but its build never reaches the cell (held, then timed out).
        h.cells["par1-c1"].link.hang("BuildInstance", times=1)
        request = create_request("no-winner-yet", request_id=uuid.uuid4().hex)
        with pytest.raises(grpc.aio.AioRpcError):
            await h.api("par1").CreateInstance(request)
        await h.advance(0.01)
        only = await h.api("nyc1").CreateInstance(request)
        h.claims_net.heal()
        for _ in range(3):
            await h.settle_claims()
            await h.advance(1.0)
        assert await live_holders(h, request.request_id) == {only.instance_id: only.cell}
        # A retry resumes the winning claim's build; then the other instance is the duplicate, and goes.
        await h.sync()
        winner = await h.api("nyc1").CreateInstance(request)
        assert winner.instance_id != only.instance_id and winner.cell == "par1-c1"
        assert await settled(h, request.request_id) == {winner.instance_id: "par1-c1"}


async def test_a_replay_after_a_spilled_instance_was_deleted_does_not_build_it_again() -> None:
    from tests.unit.cellapi.router.test_create_inprocess import SPLIT

    async with Harness.running(SITES, cells(par1=SPLIT)) as h:
        request = create_request("spilled", flavor="m1.medium")
        inst = await h.api("par1").CreateInstance(request)
        assert inst.cell == "ams1-c1"
        await h.api("par1").DeleteInstance(compute_pb2.DeleteInstanceRequest(name=inst.name))
        await h.until(
            lambda: _status_is(h, "ams1-c1", inst.instance_id, "DELETED"), f"{inst.instance_id} deleted"
        )
        builds = {c.cell_id: c.link.calls.get("BuildInstance", 0) for c in h.cells.values()}
        replays = await asyncio.gather(*(h.api(site).CreateInstance(request) for site in ("par1", "nyc1")))
        # The replays are answered with what the request made, deleted since; nothing is built again.
        assert [(r.instance_id, r.status) for r in replays] == [(inst.instance_id, common_pb2.DELETED)] * 2
        assert {c.cell_id: c.link.calls.get("BuildInstance", 0) for c in h.cells.values()} == builds
        assert await live_holders(h, request.request_id) == {}


async def _status_is(h: Harness, cell_id: str, instance_id: str, status: str) -> bool:
    rows = {r.instance_id: r.status for r in await h.cells[cell_id].records.load_instances()}
    return rows.get(instance_id) == status
