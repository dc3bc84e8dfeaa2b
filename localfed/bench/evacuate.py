"""`cellfed bench evacuate`: how long evacuating a host with N instances takes in one real cell
(controller + test-driver agents as processes, a real Cassandra DC). For each N: N instances are built
on one host (the others disabled meanwhile), that host's agent is SIGKILLed, and the operator's forced
evacuation (the host is gone: powered off) rebuilds them on the others. Prints the EvacuateHost call
(the cell's decision and its N row writes) and the time until all N are ACTIVE again, and the wait a
non-forced evacuation adds before it is allowed (lease + margin + fencing, from the cell's settings).
A benchmark, not a test: it prints figures."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import click
import grpc
from cellfed.v1 import cell_pb2, cell_pb2_grpc, common_pb2
from rich.console import Console
from rich.table import Table

from fedlib.catalog import FLAVORS
from fedlib.ids import new_instance_id
from fedrpc.flavors import flavor_to_proto
from localfed.bench.options import cassandra_address_base
from localfed.paths import state_dir
from localfed.processes import spawn, stop_all, wait_ready

CELL = "bench-evac"
DC = "bench"
LEASE_S, MARGIN_S, FENCE_S = 30.0, 3.0, 15.0  # the defaults of `cell serve`


@click.command("evacuate")
@click.option("--sizes", default="10,50,200", show_default=True, help="Instances on the evacuated host.")
@click.option("--hosts", default=3, show_default=True, type=click.IntRange(2, 16), help="Test-driver hosts.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch directory (default <repo>/.state/bench-evacuate).")  # fmt: skip
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@cassandra_address_base("127.0.30.11")
def evacuate(sizes: str, hosts: int, directory: Path | None, output: str, address_base: str) -> None:
    """Time to evacuate a host with N instances: the call, and until all N are ACTIVE elsewhere."""
    try:
        counts = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter("a comma-separated list of instance counts", param_hint="--sizes") from None
    if not counts or any(not 1 <= n <= 2000 for n in counts):
        raise click.BadParameter("each size must be 1-2000", param_hint="--sizes")
    root = (directory or state_dir() / "bench-evacuate").absolute()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rounds = asyncio.run(_run(root, counts, hosts, procs, address_base))
    finally:
        stop_all(procs)
        _down(root / "cassandra")
    results = {"hosts": hosts, "fencing_wait_s": LEASE_S + MARGIN_S + FENCE_S, "rounds": rounds}
    if output == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        _print(results)


def _down(directory: Path) -> None:
    from localfed.cassandra import cluster

    if (directory / cluster.MANIFEST).is_file():
        cluster.down(directory, purge=True)


class _Cell:
    def __init__(self, root: Path, port: int, procs: list[subprocess.Popen[bytes]]) -> None:
        self.root, self.port, self.procs = root, port, procs
        self.agents: dict[str, subprocess.Popen[bytes]] = {}

    def start_agent(self, host: str) -> None:
        # Big hosts: capacity never refuses, so this measures evacuation, not exhaustion.
        args = ["agent", "serve", "--host-id", host, "--cell-id", CELL,
                "--controller", f"127.0.0.1:{self.port}",
                "--vcpus", "256", "--memory-mb", "4194304", "--disk-gb", "1000000",
                "--state-dir", str(self.root / "hosts" / host)]  # fmt: skip
        agent = spawn(args, self.root / "logs" / f"{host}.log")
        self.procs.append(agent)
        wait_ready(agent, f"agent {host}")
        self.agents[host] = agent

    def kill_agent(self, host: str) -> None:
        agent = self.agents.pop(host)
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(10)


async def _run(
    root: Path, counts: list[int], hosts: int, procs: list[subprocess.Popen[bytes]], address_base: str
) -> list[dict[str, Any]]:
    from localfed.cassandra import cluster
    from localfed.cassandra.node_config import ClusterSpec
    from replication.cql import migrate
    from replication.cql.session import connect

    spec = ClusterSpec(dcs=(DC,), nodes_per_dc=1, address_base=address_base, directory=root / "cassandra")
    await cluster.up(spec, apply_schema=False)
    points = [n.address for n in cluster.load(spec.directory).nodes]
    keyspace = f"bench_{uuid.uuid4().hex[:8]}"
    session = await asyncio.to_thread(connect, points, DC)
    try:
        await migrate.apply_schema(session, global_keyspace=keyspace, dcs={DC: 1}, cells=[(CELL, DC)],
                                   known_dcs=await migrate.read_topology(session))  # fmt: skip
    finally:
        await session.aclose()
    controller = spawn(["cell", "serve", "--cell-id", CELL, "--site", "bench", "--region", DC, "--listen",
                        "127.0.0.1:0", "--cassandra", ",".join(points), "--local-dc", DC,
                        "--global-keyspace", keyspace, "--lease-s", str(LEASE_S),
                        "--lease-margin-s", str(MARGIN_S), "--fence-s", str(FENCE_S)],
                       root / "logs" / "controller.log")  # fmt: skip
    procs.append(controller)
    cell = _Cell(root, int(wait_ready(controller, "cell controller")["port"]), procs)
    names = [f"h{h}" for h in range(hosts)]
    for host in names:
        cell.start_agent(host)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cell.port}") as channel:
        stub = cell_pb2_grpc.CellServiceStub(channel)
        await _hosts_up(stub, hosts)
        return [await _round(stub, cell, names, n) for n in counts]


async def _hosts_up(stub: cell_pb2_grpc.CellServiceStub, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = await stub.ListHosts(cell_pb2.ListCellHostsRequest(), timeout=5)
        if sum(h.status.up for h in got.hosts) >= count:
            return
        await asyncio.sleep(0.2)
    raise click.ClickException(f"{count} hosts did not come up within 60 s")


async def _round(
    stub: cell_pb2_grpc.CellServiceStub, cell: _Cell, names: list[str], n: int
) -> dict[str, Any]:
    victim, others = names[0], names[1:]
    for host in others:  # everything lands on the victim
        await stub.SetHostDisabled(cell_pb2.SetHostDisabledRequest(host=host, disabled=True), timeout=5)
    flavor = flavor_to_proto(FLAVORS["m1.tiny"])
    slots = asyncio.Semaphore(16)

    async def build(k: int) -> str:
        iid = str(new_instance_id(CELL, time.time_ns() // 1_000_000, random.getrandbits(80)))
        request = cell_pb2.BuildInstanceRequest(instance_id=iid, tenant="bench", display_name=f"e{n}-{k}",
                                                flavor=flavor, image="debian-12")  # fmt: skip
        async with slots:
            await stub.BuildInstance(request, timeout=30)
        return iid

    ids = await asyncio.gather(*(build(k) for k in range(n)))
    await _all_active(stub, ids, 120)
    for host in others:
        await stub.SetHostDisabled(cell_pb2.SetHostDisabledRequest(host=host, disabled=False), timeout=5)
    cell.kill_agent(victim)
    started = time.perf_counter()
    result = await stub.EvacuateHost(
        cell_pb2.CellEvacuateHostRequest(host=victim, force=True, powered_off=True), timeout=60
    )
    call_s = time.perf_counter() - started
    await _all_active(stub, ids, 300)
    active_s = time.perf_counter() - started
    if sorted(m.instance_id for m in result.moved) != sorted(ids) or result.stayed:
        raise click.ClickException(f"evacuation of {n} moved {len(result.moved)}, left {len(result.stayed)}")
    cell.start_agent(victim)  # back, empty, for the next round
    await _hosts_up(stub, len(names))
    return {"instances": n, "call_ms": round(call_s * 1000, 1), "all_active_s": round(active_s, 2),
            "per_instance_ms": round(active_s * 1000 / n, 2)}  # fmt: skip


async def _all_active(stub: cell_pb2_grpc.CellServiceStub, ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        left = 0
        for start in range(0, len(ids), 500):
            got = await stub.BatchGetInstances(
                cell_pb2.BatchGetInstancesRequest(tenant="bench", instance_ids=ids[start : start + 500]),
                timeout=10,
            )
            left += sum(i.status != common_pb2.ACTIVE for i in got.instances) + len(got.missing_ids)
        if not left:
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"{left} of {len(ids)} not ACTIVE within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


def _print(results: dict[str, Any]) -> None:
    title = (f"Evacuating one host ({results['hosts']} test-driver hosts, forced: the host is powered off; "
             f"a non-forced evacuation first waits {results['fencing_wait_s']:.0f} s of lease + margin + "
             "fencing)")  # fmt: skip
    table = Table(title=title)
    for column in ("instances", "EvacuateHost call", "until all ACTIVE elsewhere", "per instance"):
        table.add_column(column)
    for r in results["rounds"]:
        table.add_row(
            str(r["instances"]), f"{r['call_ms']} ms", f"{r['all_active_s']} s", f"{r['per_instance_ms']} ms"
        )
    Console().print(table)
