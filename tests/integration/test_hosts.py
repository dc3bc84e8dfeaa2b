"""Host leases, fencing and evacuation in a real cell: controller and two test-driver agents as processes
on the suite's real Cassandra, short leases (3 s + 1 s margin + 3 s fencing). A host whose agent is
frozen (SIGSTOP: alive but cut off, the case fencing exists for) is evacuated once its lease has expired
and fencing time has passed; its instances come up on the other host as their next generation; when the
old agent wakes it fences first, then connects for a new lease, destroys its stale copies, and only then
reports ready. Nothing is lost and no instance ever runs on two hosts (with the test driver a frozen
agent's guests are frozen with it, so "running" is what each agent reports; see the log order below)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cellfed.v1 import cell_pb2, common_pb2

from tests.cell_harness import Agent, CellHarness
from tests.integration.test_cell import build_request, wait_until

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]

LEASE = ["--lease-s", "3", "--lease-margin-s", "1", "--fence-s", "3"]
AGENT_LEASE = ["--lease-s", "3", "--fence-s", "3"]
FENCED_AFTER_S = 7.0


@pytest.fixture
async def cell(cassandra_cluster: Any, tmp_path: Path) -> AsyncIterator[CellHarness]:
    """A cell with short leases and two agents (the schema set up as tests.integration.test_cell does)."""
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
        harness.start_controller(extra=LEASE)
        for host in ("h1", "h2"):
            harness.start_agent(host, extra=AGENT_LEASE)
        await harness.wait_hosts_up(2)
        yield harness
    finally:
        harness.stop()


def metric(agent: Agent, name: str, **labels: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def hosts(stub: Any) -> dict[str, cell_pb2.HostDetail]:
    got = await stub.ListHosts(cell_pb2.ListCellHostsRequest(), timeout=5)
    return {h.status.host: h for h in got.hosts}


async def until(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.2)


def log_lines(path: Path, after: int) -> list[str]:
    return path.read_text().splitlines()[after:]


async def test_a_frozen_host_is_evacuated_after_fencing_and_destroys_its_stale_copies_on_return(
    cell: CellHarness,
) -> None:
    channel, stub = cell.stub()
    try:
        made = [
            await stub.BuildInstance(build_request(cell.cell_id, f"vm-{n}"), timeout=10) for n in range(6)
        ]
        ids = [i.instance_id for i in made]
        await wait_until(stub, ids, {common_pb2.ACTIVE})
        placed = {i.instance_id: i.host for i in (await wait_until(stub, ids, {common_pb2.ACTIVE})).values()}
        lost = max(("h1", "h2"), key=lambda h: sum(v == h for v in placed.values()))
        other = "h2" if lost == "h1" else "h1"
        moving = sorted(i for i, h in placed.items() if h == lost)
        assert moving
        log = cell.workdir / f"agent-{lost}.log"
        before = len(log.read_text().splitlines())

        cell.signal_agent(lost, signal.SIGSTOP)  # alive but cut off: it cannot renew, nor fence yet
        frozen_at = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as early:
            await stub.EvacuateHost(cell_pb2.CellEvacuateHostRequest(host=lost), timeout=5)
        assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "evacuation is allowed in" in (early.value.details() or "")

        async def fenced() -> bool:
            return (await hosts(stub))[lost].lease_state == "FENCED"

        await until("the frozen host's lease to pass fencing", fenced, timeout_s=FENCED_AFTER_S + 5)
        assert time.monotonic() - frozen_at >= FENCED_AFTER_S - 1.5  # not before lease + margin + fence
        result = await stub.EvacuateHost(cell_pb2.CellEvacuateHostRequest(host=lost), timeout=10)
        assert sorted(m.instance_id for m in result.moved) == moving and not result.stayed
        assert {(m.to_host, m.generation) for m in result.moved} == {(other, 2)}
        after = await wait_until(stub, ids, {common_pb2.ACTIVE}, timeout_s=20)
        assert {i.host for i in after.values()} == {other}  # nothing lost: all six run on the other host
        assert metric(cell.agents[other], "cellfed_agent_domains", power="RUNNING") == len(ids)

        cell.signal_agent(lost, signal.SIGCONT)  # it wakes with a lease long over

        async def back() -> bool:
            h = (await hosts(stub))[lost]
            return h.status.up and h.lease_state == "HELD"

        await until("the old host back under a new lease", back, timeout_s=20)

        async def stale_gone() -> bool:
            return metric(cell.agents[lost], "cellfed_agent_domains") == 0

        await until("the old host's stale copies destroyed", stale_gone, timeout_s=10)
        assert metric(cell.agents[lost], "cellfed_agent_fences_total") == 1
        assert metric(cell.agents[other], "cellfed_agent_domains", power="RUNNING") == len(ids)
        final = await wait_until(stub, ids, {common_pb2.ACTIVE}, timeout_s=10)
        assert {i.host for i in final.values()} == {other}

        # The order on the old host: fence, reconnect, the stale copies destroyed, and only then ready.
        lines = log_lines(log, before)
        fence = next(n for n, line in enumerate(lines) if "fencing" in line)
        connected = next(n for n, line in enumerate(lines) if n > fence and "connected to controller" in line)
        stale = [n for n, line in enumerate(lines) if "STALE_GENERATION" in line]
        ready = next(
            n for n, line in enumerate(lines) if n > connected and re.search(r"lease \d+: ready", line)
        )
        assert len(stale) == len(moving), lines
        assert fence < connected < min(stale) and max(stale) < ready, lines
    finally:
        await channel.close()


async def test_force_evacuation_of_a_killed_host_needs_the_powered_off_word(cell: CellHarness) -> None:
    channel, stub = cell.stub()
    try:
        made = [
            await stub.BuildInstance(build_request(cell.cell_id, f"vm-{n}"), timeout=10) for n in range(4)
        ]
        ids = [i.instance_id for i in made]
        placed = {i.instance_id: i.host for i in (await wait_until(stub, ids, {common_pb2.ACTIVE})).values()}
        lost = placed[ids[0]]
        cell.signal_agent(lost, signal.SIGKILL)  # the host is gone (and its test-driver guests with it)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.EvacuateHost(cell_pb2.CellEvacuateHostRequest(host=lost, force=True), timeout=5)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "powered off" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.EvacuateHost(cell_pb2.CellEvacuateHostRequest(host="nope"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        started = time.perf_counter()
        result = await stub.EvacuateHost(
            cell_pb2.CellEvacuateHostRequest(host=lost, force=True, powered_off=True), timeout=10
        )
        took = time.perf_counter() - started
        moved = sorted(m.instance_id for m in result.moved)
        assert moved == sorted(i for i, h in placed.items() if h == lost)
        await wait_until(stub, ids, {common_pb2.ACTIVE}, timeout_s=20)
        assert took < 5
        cell.start_agent(lost, extra=AGENT_LEASE)  # it comes back empty, under a new lease
        await cell.wait_hosts_up(2)
        final = await wait_until(stub, ids, {common_pb2.ACTIVE}, timeout_s=10)
        assert all(final[i].host != lost for i in moved)
    finally:
        await channel.close()
