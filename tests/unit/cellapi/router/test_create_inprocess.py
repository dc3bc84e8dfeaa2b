"""Creates through a real router to real cells, in one process (tests.inprocess.harness): placement,
idempotency under the client's request id, spill-over, and what a client is told when a cell refuses,
fails, goes away or loses its answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable

import grpc
import pytest
from cellfed.v1 import common_pb2, compute_pb2

from replication.memory_cell import MemoryCellRecords
from tests.inprocess.harness import SITES, Harness, HostSpec, cells, create_request

# Four 1-vCPU hosts: the cell-wide summary has room for a 2-vCPU m1.medium (and is far from full, so
# ranking never reorders it by share), but no single host can hold one: the cell's own claim refuses.
SPLIT = tuple(HostSpec(f"par1-h{n}", vcpus=1, memory_mb=8_192, disk_gb=100) for n in range(1, 5))


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_create_goes_to_the_nearest_cell_and_becomes_active() -> None:
    async with Harness.running(SITES, cells()) as h:
        made = {site: await h.api(site).CreateInstance(create_request(f"at-{site}")) for site in h.routers}
        assert {site: i.cell for site, i in made.items()} == {s: f"{s}-c1" for s in h.routers}
        assert all(i.status == common_pb2.BUILDING for i in made.values())
        inst = made["par1"]
        await h.indexed(inst.instance_id, status="ACTIVE")  # the agent ran it; the cell published
        got = await h.api("nyc1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert (got.status, got.stale, got.site) == (common_pb2.ACTIVE, False, "par1")


async def test_a_replayed_request_id_returns_the_same_instance_at_any_router() -> None:
    async with Harness.running(SITES, cells()) as h:
        request = create_request("once")
        first = await h.api("par1").CreateInstance(request)
        again = await h.api("par1").CreateInstance(request)
        elsewhere = await h.api("nyc1").CreateInstance(request)  # another region's router
        assert first.instance_id == again.instance_id == elsewhere.instance_id
        assert await h.holders(first.instance_id) == {"par1-c1"}
        assert h.cells["par1-c1"].link.calls["BuildInstance"] == 1
        other = create_request("twice", request_id=request.request_id)
        err = await rpc_error(h.api("ams1").CreateInstance(other))
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_a_cell_that_refuses_for_room_spills_to_the_next_candidate() -> None:
    async with Harness.running(SITES, cells(par1=SPLIT)) as h:
        request = create_request("big", flavor="m1.medium")
        inst = await h.api("par1").CreateInstance(request)
        assert inst.cell == "ams1-c1"  # the next nearest
        assert inst.instance_id.startswith("ams1-c1.")  # the claim moved to an id naming the cell built in
        assert h.cells["par1-c1"].link.calls["BuildInstance"] == 1
        assert await h.holders(inst.instance_id) == {"ams1-c1"}
        got = await h.api("par1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert got.cell == "ams1-c1"
        again = await h.api("par1").CreateInstance(request)
        assert again.instance_id == inst.instance_id  # the replay finds the moved claim


async def test_no_cell_with_room_is_resource_exhausted_saying_why() -> None:
    small = (HostSpec("h1", vcpus=4, memory_mb=8_192),)
    async with Harness.running(SITES, cells(par1=small, ams1=small, nyc1=small)) as h:
        err = await rpc_error(h.api("par1").CreateInstance(create_request("huge", flavor="m1.xlarge")))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "3 too small" in (err.details() or ""), err.details()
        assert not any(c.link.calls.get("BuildInstance") for c in h.cells.values())


async def test_every_candidate_refusing_is_resource_exhausted_naming_each() -> None:
    async with Harness.running(SITES, cells()) as h:
        for cell in h.cells.values():
            cell.link.refuse("BuildInstance", grpc.StatusCode.RESOURCE_EXHAUSTED, f"{cell.cell_id} is full")
        err = await rpc_error(h.api("par1").CreateInstance(create_request("nowhere")))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert all(f"{c}: {c} is full" in (err.details() or "") for c in h.cells), err.details()


async def test_a_lost_build_answer_is_unavailable_and_the_retry_returns_what_the_cell_built() -> None:
    async with Harness.running(SITES, cells()) as h:
        h.cells["par1-c1"].link.lose_answer("BuildInstance", grpc.StatusCode.DEADLINE_EXCEEDED)
        request = create_request("ambiguous")
        err = await rpc_error(h.api("par1").CreateInstance(request))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "retry with the same request_id" in (err.details() or ""), err.details()
        assert "BuildInstance" not in h.cells["ams1-c1"].link.calls  # an ambiguous outcome never spills
        retried = await h.api("par1").CreateInstance(request)
        assert retried.cell == "par1-c1"
        assert await h.holders(retried.instance_id) == {"par1-c1"}


async def test_a_build_past_its_deadline_is_unavailable_and_the_retry_resumes_it() -> None:
    async with Harness.running(SITES, cells(), router_settings={"cell_timeout_s": 0.2}) as h:
        h.cells["par1-c1"].link.hang("BuildInstance", times=1)
        request = create_request("slow")
        started = time.monotonic()
        err = await rpc_error(h.api("par1").CreateInstance(request))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "did not answer" in (err.details() or "") and "same request_id" in (err.details() or "")
        assert 0.2 <= time.monotonic() - started < 1.0
        retried = await h.api("par1").CreateInstance(request)  # nothing was built: the retry builds it
        assert retried.cell == "par1-c1" and retried.instance_id.startswith("par1-c1.")
        assert await h.holders(retried.instance_id) == {"par1-c1"}


@pytest.mark.parametrize("how", ["stop", "cut"])
async def test_a_down_cell_gets_no_new_work(how: str) -> None:
    async with Harness.running(SITES, cells()) as h:
        await h.mark_down("par1-c1", how=how)
        inst = await h.api("par1").CreateInstance(create_request("elsewhere"))
        assert inst.cell == "ams1-c1"
        assert "BuildInstance" not in h.cells["par1-c1"].link.calls  # skipped, not tried and refused


async def test_a_build_the_host_fails_is_error_with_its_fault() -> None:
    async with Harness.running(SITES, cells()) as h:
        h.cells["par1-c1"].agents["par1-c1-h1"].mode = "fail"
        inst = await h.api("par1").CreateInstance(create_request("doomed"))
        await h.indexed(inst.instance_id, status="ERROR")
        got = await h.api("par1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert got.status == common_pb2.ERROR and got.fault == "BUILD_FAILED: fake: libvirt refused"


async def test_a_cell_that_persisted_then_dropped_the_answer_is_not_built_again_elsewhere() -> None:
    async with Harness.running(SITES, cells()) as h:
        h.cells["par1-c1"].link.lose_answer("BuildInstance", grpc.StatusCode.UNAVAILABLE)
        request = create_request("ghost", request_id=uuid.uuid4().hex)
        try:
            await h.api("par1").CreateInstance(request)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        built = {iid for c in h.cells.values() for iid in await _instance_ids(c.records)}
        assert len(built) == 1
        (instance_id,) = built
        assert await h.holders(instance_id) == {"par1-c1"}
        assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_replay_racing_the_index_returns_the_first_attempts_instance() -> None:
    async with Harness.running(SITES, cells(par1=SPLIT)) as h:
        h.hold_index()  # ams1-c1's index row has not landed yet
        request = create_request("raced", flavor="m1.medium")
        first = await h.api("par1").CreateInstance(request)
        assert first.cell == "ams1-c1"  # spilled: par1-c1 had no host with room
        await h.add_host("par1-c1", HostSpec("par1-h5", vcpus=4, memory_mb=8_192))  # now it has
        again = await h.api("par1").CreateInstance(request)
        assert again.instance_id == first.instance_id
        assert await h.holders(first.instance_id) == {"ams1-c1"}
        assert again.cell == "ams1-c1"


async def _instance_ids(records: MemoryCellRecords) -> set[str]:
    return {row.instance_id for row in await records.load_instances()}


async def test_no_cell_up_is_unavailable_which_clients_retry_not_resource_exhausted() -> None:
    async with Harness.running(SITES, cells()) as h:
        for cell_id in list(h.cells):
            await h.mark_down(cell_id)
        err = await rpc_error(h.api("par1").CreateInstance(create_request("nowhere-up")))
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
        assert "SUSPECT/OFFLINE" in (err.details() or "")
