"""A real cell: controller and three test-driver agents as processes, the suite's real 3-DC Cassandra.
Issue 3's integration cases: concurrent builds never over-book a host; SIGKILLed agents and controllers
lose and duplicate nothing; a silent host is out of placement within seconds and its instances read
UNKNOWN with an age; idempotent builds; failed builds stay listable and deletable as ERROR."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from cellfed.v1 import cell_pb2, common_pb2

from fedlib.catalog import FLAVORS
from fedlib.errors import NotFound
from fedlib.ids import new_instance_id
from fedrpc.flavors import flavor_to_proto
from tests.cell_harness import CellHarness

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]

TENANT = "acme"
SMALL = flavor_to_proto(FLAVORS["m1.small"])  # 1 vCPU, 2048 MB, 20 GB


def new_id(cell: str) -> str:
    return str(new_instance_id(cell, time.time_ns() // 1_000_000, random.getrandbits(80)))


def build_request(
    cell: str, name: str, flavor: common_pb2.Flavor = SMALL, **kw: Any
) -> cell_pb2.BuildInstanceRequest:
    return cell_pb2.BuildInstanceRequest(
        instance_id=kw.pop("instance_id", None) or new_id(cell), tenant=TENANT, display_name=name,
        flavor=flavor, image=kw.pop("image", "debian-12"), **kw,
    )  # fmt: skip


@pytest.fixture
async def cell(cassandra_cluster: Any, tmp_path: Any) -> AsyncIterator[CellHarness]:
    from replication.cql.migrate import apply_schema, read_topology
    from replication.cql.session import connect

    cell_id = f"c{uuid.uuid4().hex[:8]}"
    keyspace = f"it_{uuid.uuid4().hex[:10]}"
    session = await asyncio.to_thread(connect, cassandra_cluster.contact_points, "eu-west")
    try:
        await apply_schema(session, global_keyspace=keyspace, dcs=dict.fromkeys(cassandra_cluster.dcs, 1),
                           cells=[(cell_id, "eu-west")], known_dcs=await read_topology(session))  # fmt: skip
    finally:
        await session.aclose()
    harness = CellHarness(cell_id, tmp_path, cassandra_cluster.contact_points, "eu-west", keyspace)
    try:
        harness.start_controller()
        yield harness
    finally:
        harness.stop()


async def statuses(stub: Any, ids: list[str]) -> dict[str, common_pb2.Instance]:
    got = await stub.BatchGetInstances(
        cell_pb2.BatchGetInstancesRequest(tenant=TENANT, instance_ids=ids), timeout=5
    )
    return {i.instance_id: i for i in got.instances}


async def wait_until(
    stub: Any, ids: list[str], done: set[int], timeout_s: float = 45.0
) -> dict[str, common_pb2.Instance]:
    deadline = time.monotonic() + timeout_s
    while True:
        current = await statuses(stub, ids)
        if len(current) == len(ids) and all(i.status in done for i in current.values()):
            return current
        if time.monotonic() > deadline:
            left = Counter(common_pb2.InstanceStatus.Name(i.status) for i in current.values())
            raise AssertionError(f"not settled within {timeout_s}s: {dict(left)}")
        await asyncio.sleep(0.3)


async def test_concurrent_builds_never_overbook_a_host(cell: CellHarness) -> None:
    # 3 hosts x 8 vCPUs x ratio 4 = 96 vCPU slots, but 3 x 120 GB disk fits only 6 x 20 GB per host: 18.
    for host in ("h1", "h2", "h3"):
        cell.start_agent(host, disk_gb=120)
    await cell.wait_hosts_up(3)
    channel, stub = cell.stub()
    results = await asyncio.gather(
        *(stub.BuildInstance(build_request(cell.cell_id, f"vm-{n}"), timeout=10) for n in range(50)),
        return_exceptions=True,
    )
    built = [r for r in results if isinstance(r, common_pb2.Instance)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(built) == 18, [
        r for r in results if not isinstance(r, common_pb2.Instance | grpc.aio.AioRpcError)
    ]
    assert len(refused) == 32
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert "disk" in refused[0].details()
    per_host = Counter(i.host for i in built)
    assert per_host == {"h1": 6, "h2": 6, "h3": 6}
    final = await wait_until(stub, [i.instance_id for i in built], {common_pb2.ACTIVE})
    assert len(final) == 18
    await channel.close()


async def test_same_instance_id_twice_yields_one_instance(cell: CellHarness) -> None:
    cell.start_agent("h1")
    await cell.wait_hosts_up(1)
    channel, stub = cell.stub()
    iid = new_id(cell.cell_id)
    first, second = await asyncio.gather(
        stub.BuildInstance(build_request(cell.cell_id, "web", instance_id=iid), timeout=10),
        stub.BuildInstance(build_request(cell.cell_id, "web", instance_id=iid), timeout=10),
    )
    assert first.instance_id == second.instance_id == iid
    listed = await stub.ListInstances(cell_pb2.CellListInstancesRequest(tenant=TENANT), timeout=5)
    assert [i.instance_id for i in listed.instances] == [iid]
    with pytest.raises(grpc.aio.AioRpcError) as err:  # same id, different request: refused, not merged
        await stub.BuildInstance(build_request(cell.cell_id, "other-name", instance_id=iid), timeout=10)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await channel.close()


async def test_agent_sigkill_during_builds_leaves_nothing_stuck(cell: CellHarness) -> None:
    for host in ("h1", "h2", "h3"):
        cell.start_agent(host, memory_mb=65536, disk_gb=1000)  # room for all 30 even without h2
    await cell.wait_hosts_up(3)
    channel, stub = cell.stub()
    builds = [asyncio.ensure_future(stub.BuildInstance(build_request(cell.cell_id, f"vm-{n}"), timeout=10))
              for n in range(30)]  # fmt: skip
    await asyncio.wait(builds, return_when=asyncio.FIRST_COMPLETED)
    cell.signal_agent("h2", signal.SIGKILL)  # mid-flight: spawns already sent to h2 die with it
    built = [
        r for r in await asyncio.gather(*builds, return_exceptions=True) if isinstance(r, common_pb2.Instance)
    ]
    assert len(built) == 30
    ids = [i.instance_id for i in built]
    await asyncio.sleep(2.5)  # past the host grace: h2's instances read UNKNOWN, with an age
    on_h2 = [i for i in (await statuses(stub, ids)).values() if i.host == "h2"]
    assert on_h2 and all(
        i.status == common_pb2.UNKNOWN and i.stale and i.data_age.ToMilliseconds() > 0 for i in on_h2
    )
    cell.start_agent("h2")  # the agent returns (the test driver starts empty, like a rebooted host)
    final = await wait_until(stub, ids, {common_pb2.ACTIVE, common_pb2.ERROR})
    assert all(i.status == common_pb2.ACTIVE for i in final.values())
    await asyncio.sleep(2.0)  # a heartbeat after convergence
    for host, agent in cell.agents.items():  # no domain without a record, no record without a domain
        assert agent.domains() == sum(1 for i in final.values() if i.host == host), host
    await channel.close()


async def test_controller_sigkill_and_restart_loses_and_duplicates_nothing(cell: CellHarness) -> None:
    cell.start_agent("h1", vcpus=16, disk_gb=2000)
    cell.start_agent("h2", vcpus=16, disk_gb=2000)
    await cell.wait_hosts_up(2)
    channel, stub = cell.stub()
    acked: list[str] = []

    async def build(n: int) -> None:
        # Not acknowledged: it may or may not exist, but must not exist twice.
        with contextlib.suppress(grpc.aio.AioRpcError):
            reply = await stub.BuildInstance(build_request(cell.cell_id, f"vm-{n}"), timeout=5)
            acked.append(reply.instance_id)

    tasks = [asyncio.create_task(build(n)) for n in range(40)]
    await asyncio.sleep(0.05)
    cell.kill_controller()
    await asyncio.gather(*tasks)
    await channel.close()
    cell.start_controller()  # same port: the agents reconnect by themselves
    await cell.wait_hosts_up(2)
    channel, stub = cell.stub()
    listed = await stub.ListInstances(
        cell_pb2.CellListInstancesRequest(tenant=TENANT, page_size=500), timeout=5
    )
    ids = [i.instance_id for i in listed.instances]
    assert len(ids) == len(set(ids))
    assert set(acked) <= set(ids), "an acknowledged build was lost"
    final = await wait_until(stub, ids, {common_pb2.ACTIVE})
    await asyncio.sleep(2.0)
    assert sum(a.domains() for a in cell.agents.values()) == len(final)
    await channel.close()


async def test_silent_host_leaves_placement_within_seconds_and_returns(cell: CellHarness) -> None:
    cell.start_agent("h1")
    cell.start_agent("h2")
    await cell.wait_hosts_up(2)
    channel, stub = cell.stub()
    before = await stub.BuildInstance(build_request(cell.cell_id, "pinned"), timeout=10)
    silent = before.host
    cell.signal_agent(silent, signal.SIGSTOP)
    started = time.monotonic()
    while True:  # fast detection: how long until the host is out of placement
        status = await stub.GetCellStatus(cell_pb2.GetCellStatusRequest(), timeout=5)
        if not next(h for h in status.hosts if h.host == silent).up:
            break
        assert time.monotonic() - started < 10, "host still in placement after 10 s of silence"
        await asyncio.sleep(0.1)
    placed = [
        await stub.BuildInstance(build_request(cell.cell_id, f"after-{n}"), timeout=10) for n in range(5)
    ]
    assert {i.host for i in placed} == {next(h for h in ("h1", "h2") if h != silent)}
    got = await stub.GetInstance(
        cell_pb2.CellInstanceRequest(instance_id=before.instance_id, tenant=TENANT), timeout=5
    )
    assert got.status == common_pb2.UNKNOWN and got.stale
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a mutation needs the host
        await stub.StopInstance(
            cell_pb2.CellInstanceRequest(instance_id=before.instance_id, tenant=TENANT), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    cell.signal_agent(silent, signal.SIGCONT)
    final = await wait_until(stub, [before.instance_id], {common_pb2.ACTIVE}, timeout_s=15)
    assert not final[before.instance_id].stale
    await channel.close()


async def test_failed_build_is_error_with_fault_and_deletable(cell: CellHarness) -> None:
    cell.start_agent("h1", vcpus=32)
    await cell.wait_hosts_up(1)
    channel, stub = cell.stub()
    # 100 vCPUs fit the host's 128 schedulable slots, but the agent's domain builder refuses > 64 vCPUs.
    huge = common_pb2.Flavor(name="huge", vcpus=100, memory_mb=1024, disk_gb=1)
    inst = await stub.BuildInstance(build_request(cell.cell_id, "doomed", flavor=huge), timeout=10)
    final = await wait_until(stub, [inst.instance_id], {common_pb2.ERROR}, timeout_s=15)
    assert "vcpus" in final[inst.instance_id].fault
    listed = await stub.ListInstances(cell_pb2.CellListInstancesRequest(tenant=TENANT), timeout=5)
    assert [i.status for i in listed.instances] == [common_pb2.ERROR]
    deleted = await stub.DeleteInstance(
        cell_pb2.CellInstanceRequest(instance_id=inst.instance_id, tenant=TENANT), timeout=5
    )
    assert deleted.status in (common_pb2.DELETING, common_pb2.DELETED)
    await wait_until(stub, [inst.instance_id], {common_pb2.DELETED}, timeout_s=15)
    status = await stub.GetCellStatus(cell_pb2.GetCellStatusRequest(), timeout=5)
    assert status.capacity.vcpus_free == status.capacity.vcpus_total  # the claim went back
    await channel.close()


async def test_bad_input_names_the_field(cell: CellHarness) -> None:
    channel, stub = cell.stub()
    cases = [
        (build_request(cell.cell_id, "x", instance_id="not-an-id"), "instance_id"),
        (build_request(cell.cell_id, "bad name!"), "display_name"),
        (build_request(cell.cell_id, "x", user_data=b"x" * 70_000), "user_data"),
        (build_request(cell.cell_id, "x", labels={f"k{n}": "v" for n in range(40)}), "labels"),
        (
            build_request(cell.cell_id, "x", flavor=common_pb2.Flavor(name="zero", vcpus=0, memory_mb=1)),
            "vcpus",
        ),
    ]
    bad_image = build_request(cell.cell_id, "x")
    bad_image.image = "windows-95"
    cases.append((bad_image, "image"))
    # An id naming another cell: only that cell may build it (cellapi.router.create).
    cases.append(
        (build_request(cell.cell_id, "x", instance_id=str(new_instance_id("other-c1", 1, 1))), "instance_id")
    )
    for field, value in (
        ("region", "bad region!"),
        ("fingerprint", ""),
        ("expires_at_ms", 1),
        ("created_at_ms", -1),
    ):
        bad_claim = build_request(cell.cell_id, "x")
        bad_claim.request_id = "req-1"
        bad_claim.claim.CopyFrom(
            cell_pb2.RequestClaim(
                region="eu-west", created_at_ms=1_000, fingerprint="fp", expires_at_ms=9_000
            )
        )
        setattr(bad_claim.claim, field, value)
        cases.append((bad_claim, f"claim.{field}"))
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.BuildInstance(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in err.value.details(), (field, err.value.details())
    await channel.close()


async def test_directory_row_is_re_asserted_after_a_replica_loses_it(cell: CellHarness) -> None:
    """A lost cross-DC replica of the cell's directory row (a write dropped on a WAN link reset) must not
    hide the cell from that region for good: the controller re-writes its row. Deleting the row in a
    remote DC stands for the lost replica; the row must come back there within two re-assert periods."""
    from replication.cql.session import connect
    from replication.cql.store import CqlStore

    session = await asyncio.to_thread(connect, cell.contact_points, "us-east")
    try:
        directory = CqlStore(session, keyspace=cell.global_keyspace, region="us-east").directory
        assert (await directory.get_cell(cell.cell_id)).cell_id == cell.cell_id
        await directory.delete_cell(cell.cell_id, at_ms=time.time_ns() // 1_000_000)
        with pytest.raises(NotFound):
            await directory.get_cell(cell.cell_id)
        deadline = time.monotonic() + 25.0
        while True:
            with contextlib.suppress(NotFound):
                back = await directory.get_cell(cell.cell_id)
                break
            assert time.monotonic() < deadline, "the cell never re-asserted its directory row"
            await asyncio.sleep(0.5)
        assert back.state.value == "ENABLED" and back.endpoint.endswith(f":{cell.port}")
    finally:
        await session.aclose()
