"""Reads through a real router when a cell is away, in one process (tests.inprocess.harness): a list
names the cells that did not answer and marks their entries stale and UNKNOWN without waiting on a cell
the router knows is down; a get answers from the index with the data's age; a mutation says which site
is unavailable."""

from __future__ import annotations

import time

import grpc
import pytest
from cellfed.v1 import common_pb2, compute_pb2, compute_pb2_grpc

from tests.inprocess.harness import SITES, Harness, cells, create_request


async def populate(h: Harness) -> dict[str, common_pb2.Instance]:
    """Two instances in par1-c1 and one in ams1-c1, all ACTIVE and listed."""
    api = h.api("par1")
    made = [
        await api.CreateInstance(create_request("p-1")),
        await api.CreateInstance(create_request("p-2")),
        await api.CreateInstance(create_request("a-1", site="ams1")),
    ]
    assert [i.cell for i in made] == ["par1-c1", "par1-c1", "ams1-c1"]
    for inst in made:
        await h.indexed(inst.instance_id, status="ACTIVE")

    async def listed() -> bool:
        page = await api.ListInstances(compute_pb2.ListInstancesRequest(skip_enrichment=True))
        return len(page.instances) == len(made)

    await h.until(listed, "listing rows of every instance")
    return {i.display_name: i for i in made}


async def list_all(api: compute_pb2_grpc.ComputeServiceStub) -> compute_pb2.ListInstancesResponse:
    page: compute_pb2.ListInstancesResponse = await api.ListInstances(
        compute_pb2.ListInstancesRequest(page_size=100, order_by="display_name")
    )
    assert not page.next_page_token
    return page


@pytest.mark.parametrize("how", ["stop", "cut"])
async def test_a_list_with_a_down_cell_names_it_and_marks_its_entries(how: str) -> None:
    # A long enrichment deadline, so "did not wait for it" is plain in the timing.
    async with Harness.running(SITES, cells(), router_settings={"enrich_timeout_s": 2.0}) as h:
        await populate(h)
        await h.mark_down("ams1-c1", how=how)
        started = time.monotonic()
        page = await list_all(h.api("par1"))
        took = time.monotonic() - started
        assert list(page.unreachable_cells) == ["ams1-c1"]
        by_name = {i.display_name: i for i in page.instances}
        assert [n for n in by_name] == ["a-1", "p-1", "p-2"]  # every entry, in order, from the index
        assert (by_name["a-1"].status, by_name["a-1"].stale, by_name["a-1"].site) == (
            common_pb2.UNKNOWN, True, "ams1"
        )  # fmt: skip
        assert all(by_name[n].status == common_pb2.ACTIVE and not by_name[n].stale for n in ("p-1", "p-2"))
        assert "BatchGetInstances" not in h.cells["ams1-c1"].link.calls  # known down: not even asked
        assert took < 1.0, took  # not the enrichment deadline


async def test_a_list_with_a_cell_that_does_not_answer_in_time_is_partial_at_the_deadline() -> None:
    async with Harness.running(SITES, cells(), router_settings={"enrich_timeout_s": 0.2}) as h:
        await populate(h)
        h.cells["ams1-c1"].link.hang("BatchGetInstances")  # up for probes, silent for this
        started = time.monotonic()
        page = await list_all(h.api("par1"))
        took = time.monotonic() - started
        assert list(page.unreachable_cells) == ["ams1-c1"]
        stale = {i.display_name for i in page.instances if i.stale and i.status == common_pb2.UNKNOWN}
        assert stale == {"a-1"}
        assert 0.2 <= took < 1.0, took


async def test_a_get_in_a_down_cell_answers_from_the_index_unknown_with_its_age() -> None:
    async with Harness.running(SITES, cells()) as h:
        inst = (await populate(h))["a-1"]
        await h.mark_down("ams1-c1")
        await h.advance(7)
        got = await h.api("par1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert (got.status, got.stale, got.cell, got.site) == (common_pb2.UNKNOWN, True, "ams1-c1", "ams1")
        assert got.data_age.ToMilliseconds() == 7_000  # the index row's age on the harness's clock
        assert got.display_name == "a-1"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await h.api("par1").StopInstance(compute_pb2.InstanceActionRequest(name=inst.name))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "ams1" in (err.value.details() or ""), err.value.details()


async def test_another_tenant_reads_a_down_cells_instance_like_an_id_that_does_not_exist() -> None:
    """No existence oracle while a cell is down: another tenant's real id and a made-up id of the same
    cell get the same answer (UNAVAILABLE: the index cannot say, and the cell is not there to ask)."""
    async with Harness.running(SITES, cells()) as h:
        inst = (await populate(h))["a-1"]
        await h.mark_down("ams1-c1")
        made_up = "instances/ams1-c1." + "0" * 26
        answers = []
        for name in (inst.name, made_up):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await h.api("par1", tenant="other").GetInstance(compute_pb2.GetInstanceRequest(name=name))
            details = (err.value.details() or "").replace(inst.instance_id, "ID").replace(made_up[10:], "ID")
            answers.append((err.value.code(), details))
        assert answers[0] == answers[1] and answers[0][0] == grpc.StatusCode.UNAVAILABLE, answers


async def test_an_instance_on_a_silent_host_reads_unknown_from_its_live_cell() -> None:
    async with Harness.running(SITES, cells()) as h:
        inst = (await populate(h))["p-1"]
        h.cells["par1-c1"].agents["par1-c1-h1"].mode = "silent"  # the stream stays up, nothing is said
        await h.advance(4)  # past the cell's 3 s host grace
        got = await h.api("par1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert (got.status, got.stale, got.cell) == (common_pb2.UNKNOWN, True, "par1-c1")
        assert got.data_age.ToMilliseconds() == 4_000


async def test_a_cell_back_from_the_dead_answers_again_from_its_keyspace() -> None:
    async with Harness.running(SITES, cells()) as h:
        await populate(h)
        await h.mark_down("ams1-c1")
        assert list((await list_all(h.api("par1"))).unreachable_cells) == ["ams1-c1"]
        await h.start_cell(h.cells["ams1-c1"].spec)  # same keyspace, new process, its agent reconnects
        await h.sync()
        page = await list_all(h.api("par1"))
        assert not page.unreachable_cells
        assert all(i.status == common_pb2.ACTIVE and not i.stale for i in page.instances)


@pytest.mark.parametrize("repeat", range(3))
async def test_a_get_whose_owner_hangs_is_answered_from_the_index_within_the_callers_deadline(
    repeat: int,
) -> None:
    """A cell behind a fresh cut (the prober still thinks it up) does not answer; the router's own cap
    (cell_timeout_s, 2 s here) is longer than the client's 0.6 s deadline. The router gives the forward
    only a share of what the client has left and answers from the index in time: a stale, UNKNOWN
    entry, not the client's DEADLINE_EXCEEDED. A mutation names the unreachable site the same way."""
    async with Harness.running(SITES, cells()) as h:
        inst = (await populate(h))["a-1"]
        h.cells["ams1-c1"].link.hang("GetInstance")
        h.cells["ams1-c1"].link.hang("StopInstance")
        started = time.monotonic()
        got = await h.api("par1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name), timeout=0.6)
        assert (got.status, got.stale, got.cell) == (common_pb2.UNKNOWN, True, "ams1-c1")
        assert time.monotonic() - started < 0.6
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await h.api("par1").StopInstance(compute_pb2.InstanceActionRequest(name=inst.name), timeout=0.6)
        assert err.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
        assert "ams1" in (err.value.details() or ""), err.value.details()  # said by the router, naming it
