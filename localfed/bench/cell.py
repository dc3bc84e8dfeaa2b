"""`cellfed bench cell`: one real cell (controller + M test-driver agents as processes, a real Cassandra
DC) building N instances, without a NIC and then (another cell, same run) with one; prints builds/s,
addresses allocated per second, acknowledgement and build->ACTIVE latency side by side, and the pure
placement decision time at 1,000 and 10,000 hosts, and one build step of the cell core there against
the old rebuild of every host view. A benchmark, not a test: it prints figures."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
import uuid
from dataclasses import asdict
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
from localfed.bench.address_step import time_address_build
from localfed.bench.core_step import time_core_build
from localfed.bench.options import cassandra_address_base
from localfed.bench.placement import time_placement
from localfed.bench.store import summarize
from localfed.paths import state_dir
from localfed.processes import spawn, stop_all, wait_ready

CELL = "bench-c1"
CELL_WITH_NIC = "bench-c2"
DC = "bench"
# A /16: the pool never runs out here (this measures taking an address, not exhaustion).
BENCH_NETWORK = {
    "name": "public", "bridge": "br-bench", "default": True,
    "ipv4": {"cidr": "10.0.0.0/16", "gateway": "10.0.0.1", "pool": ["10.0.0.2", "10.0.255.254"]},
    "ipv6": {"prefix": "2001:db8::/64", "gateway": "2001:db8::1"},
}  # fmt: skip


@click.command("cell")
@click.option("--n", "count", default=200, show_default=True, type=click.IntRange(1, 5000), help="Instances.")
@click.option("--hosts", default=3, show_default=True, type=click.IntRange(1, 32), help="Test-driver hosts.")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 256))
@click.option("--placement-repeats", default=300, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch directory (default <repo>/.state/bench-cell).")  # fmt: skip
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@cassandra_address_base("127.0.0.41")
def cell(
    count: int,
    hosts: int,
    concurrency: int,
    placement_repeats: int,
    directory: Path | None,
    output: str,
    address_base: str,
) -> None:
    """Builds/s and p50/p99 build latency of a real cell; placement decision time at 1k and 10k hosts."""

    root = (directory or state_dir() / "bench-cell").absolute()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        results = asyncio.run(_run(root, count, hosts, concurrency, procs, address_base))
    finally:
        stop_all(procs)
        _down(root / "cassandra")
    results["placement"] = [time_placement(n, placement_repeats) for n in (1_000, 10_000)]
    results["core_build"] = [time_core_build(n, min(placement_repeats, 200)) for n in (1_000, 10_000)]
    repeats = min(placement_repeats, 200)
    results["address_build"] = [time_address_build(n, repeats) for n in (0, 1_000, 10_000)]
    if output == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        _print(results)


def _down(directory: Path) -> None:
    from localfed.cassandra import cluster

    if (directory / cluster.MANIFEST).is_file():
        cluster.down(directory, purge=True)


async def _run(
    root: Path,
    count: int,
    hosts: int,
    concurrency: int,
    procs: list[subprocess.Popen[bytes]],
    address_base: str,
) -> dict[str, Any]:
    """The same builds twice in one run, on one Cassandra: a cell that declares no network (its guests get
    no NIC), then one with a provider network (each build also takes an address and a MAC)."""
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
        await migrate.apply_schema(session, global_keyspace=keyspace, dcs={DC: 1},
                                   cells=[(CELL, DC), (CELL_WITH_NIC, DC)],
                                   known_dcs=await migrate.read_topology(session))  # fmt: skip
    finally:
        await session.aclose()
    networks = root / "networks.json"
    networks.write_text(json.dumps([BENCH_NETWORK]))
    results = await _phase(root, CELL, None, points, keyspace, count, hosts, concurrency, procs)
    results["with_nic"] = await _phase(
        root, CELL_WITH_NIC, networks, points, keyspace, count, hosts, concurrency, procs
    )
    return results


async def _phase(
    root: Path, cell_id: str, networks: Path | None, points: list[str], keyspace: str,
    count: int, hosts: int, concurrency: int, procs: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:  # fmt: skip
    argv = ["cell", "serve", "--cell-id", cell_id, "--site", "bench", "--region", DC,
            "--listen", "127.0.0.1:0", "--cassandra", ",".join(points), "--local-dc", DC,
            "--global-keyspace", keyspace]  # fmt: skip
    if networks is not None:
        argv += ["--networks-file", str(networks)]
    mine: list[subprocess.Popen[bytes]] = []
    controller = spawn(argv, root / "logs" / f"{cell_id}.log")
    procs.append(controller)
    mine.append(controller)
    try:
        port = int(wait_ready(controller, "cell controller")["port"])
        for h in range(hosts):
            # Hosts big enough that capacity never refuses: this measures the build path, not exhaustion.
            args = ["agent", "serve", "--host-id", f"h{h}", "--cell-id", cell_id,
                    "--controller", f"127.0.0.1:{port}",
                    "--vcpus", "256", "--memory-mb", "4194304", "--disk-gb", "1000000",
                    "--state-dir", str(root / "hosts" / cell_id / f"h{h}")]  # fmt: skip
            agent = spawn(args, root / "logs" / f"{cell_id}-h{h}.log")
            procs.append(agent)
            mine.append(agent)
            wait_ready(agent, f"agent h{h}")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = cell_pb2_grpc.CellServiceStub(channel)
            await _wait_hosts(stub, hosts)
            return await _build_all(stub, cell_id, count, hosts, concurrency)
    finally:
        stop_all(mine)


async def _wait_hosts(stub: cell_pb2_grpc.CellServiceStub, hosts: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = await stub.GetCellStatus(cell_pb2.GetCellStatusRequest(), timeout=5)
        if sum(h.up for h in status.hosts) >= hosts:
            return
        await asyncio.sleep(0.2)
    raise click.ClickException("the agents did not register within 60 s")


async def _build_all(
    stub: cell_pb2_grpc.CellServiceStub, cell_id: str, count: int, hosts: int, concurrency: int
) -> dict[str, Any]:
    flavor = flavor_to_proto(FLAVORS["m1.small"])
    slots = asyncio.Semaphore(concurrency)
    acks: list[float] = []
    actives: list[float] = []
    errors = addressed = 0

    async def one(n: int) -> None:
        nonlocal errors, addressed
        iid = str(new_instance_id(cell_id, time.time_ns() // 1_000_000, random.getrandbits(80)))
        async with slots:
            t0 = time.perf_counter()
            request = cell_pb2.BuildInstanceRequest(instance_id=iid, tenant="bench", display_name=f"b{n}",
                                                    flavor=flavor, image="debian-12")  # fmt: skip
            built = await stub.BuildInstance(request, timeout=30)
            acks.append(time.perf_counter() - t0)
            addressed += bool(built.addresses and built.addresses[0].ipv4)
            watch = stub.WatchInstance(
                cell_pb2.CellInstanceRequest(instance_id=iid, tenant="bench"), timeout=120
            )
            async for event in watch:
                if event.instance.status in (common_pb2.ACTIVE, common_pb2.ERROR):
                    errors += event.instance.status == common_pb2.ERROR
                    actives.append(time.perf_counter() - t0)
                    watch.cancel()
                    break

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    wall = time.perf_counter() - started
    return {
        "instances": count, "hosts": hosts, "concurrency": concurrency, "errors": errors,
        "builds_per_s": round(count / wall, 1), "wall_s": round(wall, 2),
        "with_address": addressed, "addresses_per_s": round(addressed / wall, 1),
        "ack_ms": asdict(summarize(acks)), "build_to_active_ms": asdict(summarize(actives)),
    }  # fmt: skip


def _print(results: dict[str, Any]) -> None:
    console = Console()
    r = results
    title = f"Cell builds: {r['instances']} on {r['hosts']} test-driver hosts, {r['concurrency']} in flight"
    table = Table(title=title)
    nic = r["with_nic"]
    for column in ("measure", "no NIC", "a NIC (address + MAC)"):
        table.add_column(column)
    table.add_row("builds/s (all ACTIVE)", str(r["builds_per_s"]), str(nic["builds_per_s"]))
    table.add_row("addresses allocated /s", "-", str(nic["addresses_per_s"]))
    for key, label in (("ack_ms", "BuildInstance acknowledged"), ("build_to_active_ms", "build -> ACTIVE")):
        a, b = r[key], nic[key]
        table.add_row(f"{label} p50 / p99", *(f"{x['p50_ms']} / {x['p99_ms']} ms" for x in (a, b)))
    table.add_row("builds that ended in ERROR", str(r["errors"]), str(nic["errors"]))
    console.print(table)
    placement = Table(title="Placement decision (pure core, one request)")
    for column in ("hosts", "wall p50 µs", "wall p99 µs", "CPU p50 µs", "CPU p99 µs"):
        placement.add_column(column)
    for p in results["placement"]:
        placement.add_row(str(p["n_hosts"]), str(p["p50_us"]), str(p["p99_us"]), str(p["cpu_p50_us"]),
                          str(p["cpu_p99_us"]))  # fmt: skip
    console.print(placement)
    core = Table(title="One build step of the cell core: incremental host views vs all rebuilt per build")
    for column in ("hosts", "core CPU p50 / p99 µs", "rebuilt CPU p50 / p99 µs", "rebuilt / core (p50)"):
        core.add_column(column)
    for c in results["core_build"]:
        core.add_row(str(c["n_hosts"]), f"{c['core_cpu_p50_us']} / {c['core_cpu_p99_us']}",
                     f"{c['rebuild_cpu_p50_us']} / {c['rebuild_cpu_p99_us']}",
                     f"{c['ratio_p50']}x")  # fmt: skip
    console.print(core)
    nics = Table(title="One build step of the cell core with a NIC vs without, by addresses already held")
    for column in ("held", "no NIC CPU p50 / p99 µs", "a NIC CPU p50 / p99 µs", "NIC / no NIC (p50)"):
        nics.add_column(column)
    for a in results["address_build"]:
        nics.add_row(str(a["held"]), f"{a['without_cpu_p50_us']} / {a['without_cpu_p99_us']}",
                     f"{a['with_cpu_p50_us']} / {a['with_cpu_p99_us']}", f"{a['ratio_p50']}x")  # fmt: skip
    console.print(nics)
