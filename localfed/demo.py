"""`cellfed demo`: the README's main job at this stage of the project.

Brings up a real 3-datacenter Cassandra (one DC per region), applies the versioned schema, starts one
real cell per site (a controller and two libvirt test-driver compute agents, as separate processes),
builds instances in every cell through the Cell API, then shows where each keyspace is replicated and how
long each cell's index rows took to become visible in the other regions' DCs. The full federation (peer
routers, WAN emulation) builds on this."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import grpc
from cellfed.v1 import cell_pb2, cell_pb2_grpc, common_pb2
from rich.console import Console
from rich.table import Table

from fedlib.catalog import FLAVORS
from fedlib.errors import CellfedError, NotFound
from fedlib.ids import new_instance_id
from fedlib.names import keyspace_for_cell
from localfed.processes import spawn, stop_all, wait_ready

if TYPE_CHECKING:  # the adapter is imported lazily: `cellfed --help` must not load the driver
    from replication.cql.session import CqlSession
    from replication.cql.store import CqlStore

GLOBAL_KEYSPACE = "cellfed_global"


@dataclass(frozen=True)
class DemoSite:
    site: str
    region: str  # = its Cassandra DC
    city: str

    @property
    def cell(self) -> str:
        return f"{self.site}-c1"


SITES = (DemoSite("par1", "eu-west", "Paris"), DemoSite("nyc1", "us-east", "New York"),
         DemoSite("sin1", "ap-south", "Singapore"))  # fmt: skip


def _state_dir() -> Path:
    env = os.environ.get("CELLFED_STATE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".state"


@click.command("demo")
@click.option("--instances", default=5, show_default=True, help="Instances to build in each cell.")
@click.option("--keep", is_flag=True, help="Leave Cassandra and the cells running afterwards.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="State directory (default <repo>/.state/demo).")  # fmt: skip
def demo(instances: int, keep: bool, directory: Path | None) -> None:
    """Runs 3 sites (Cassandra DC + cell each) on this machine and shows them doing real work."""
    console = Console()
    root = (directory or _state_dir() / "demo").absolute()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(_run(console, root, instances, procs))
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        if not keep:
            console.print("stopping cells and Cassandra ...")
            stop_all(procs)
            _cassandra_down(root / "cassandra")
        else:
            console.print(f"left running; stop with: cellfed cassandra down --dir {root / 'cassandra'} "
                          f"and kill the cell processes listed in {root / 'pids'}")  # fmt: skip
            (root / "pids").write_text("\n".join(str(p.pid) for p in procs) + "\n")


def _cassandra_down(directory: Path) -> None:
    from localfed.cassandra import cluster

    with contextlib.suppress(NotFound):  # nothing was started
        cluster.down(directory)


async def _run(console: Console, root: Path, count: int, procs: list[subprocess.Popen[bytes]]) -> None:
    from localfed.cassandra import cluster
    from localfed.cassandra.node_config import ClusterSpec
    from replication.cql import migrate
    from replication.cql.session import connect

    spec = ClusterSpec(dcs=tuple(s.region for s in SITES), nodes_per_dc=1, address_base="127.0.0.11",
                       directory=root / "cassandra")  # fmt: skip
    started = time.monotonic()
    with console.status("starting a 3-DC Cassandra cluster (one node per region) ..."):
        await cluster.up(spec, apply_schema=False)
    console.print(f"Cassandra ready in {time.monotonic() - started:.1f}s")
    points = [n.address for n in cluster.load(spec.directory).nodes]
    sessions = {s.region: await asyncio.to_thread(connect, points, s.region) for s in SITES}
    try:
        first = sessions[SITES[0].region]
        await migrate.apply_schema(
            first,
            global_keyspace=GLOBAL_KEYSPACE,
            dcs={s.region: 1 for s in SITES},
            cells=[(s.cell, s.region) for s in SITES],
            known_dcs=await migrate.read_topology(first),
        )
        await _print_replication(console, first)
        ports = _start_cells(console, root, points, procs)
        built = await _build_everywhere(console, ports, count)
        await _print_visibility(console, sessions, built)
    finally:
        for session in sessions.values():
            await session.aclose()


async def _print_replication(console: Console, session: CqlSession) -> None:
    from replication.cql import migrate

    table = Table(title="Keyspaces and their replication per DC (read from Cassandra's system tables)")
    for column in ("keyspace", "schema version", *(s.region for s in SITES)):
        table.add_column(column)
    for ks in (GLOBAL_KEYSPACE, *(keyspace_for_cell(s.cell) for s in SITES)):
        replication = await migrate.keyspace_replication(session, ks) or {}
        version = await migrate.current_version(session, ks)
        table.add_row(ks, str(version), *(str(replication.get(s.region, "-")) for s in SITES))
    console.print(table)


def _start_cells(
    console: Console, root: Path, points: list[str], procs: list[subprocess.Popen[bytes]]
) -> dict[str, int]:
    ports: dict[str, int] = {}
    with console.status("starting a cell controller and two compute agents per site ..."):
        for s in SITES:
            proc = spawn(["cell", "serve", "--cell-id", s.cell, "--site", s.site, "--region", s.region,
                          "--listen", "127.0.0.1:0", "--cassandra", ",".join(points), "--local-dc", s.region],
                         root / "logs" / f"{s.cell}.log")  # fmt: skip
            procs.append(proc)
            ports[s.site] = int(wait_ready(proc, f"cell {s.cell}")["port"])
            for host in ("h1", "h2"):
                host_id = f"{s.site}-{host}"
                agent = spawn(["agent", "serve", "--host-id", host_id, "--cell-id", s.cell,
                               "--controller", f"127.0.0.1:{ports[s.site]}", "--vcpus", "16",
                               "--memory-mb", "32768", "--state-dir", str(root / "hosts" / host_id)],
                              root / "logs" / f"{host_id}.log")  # fmt: skip
                procs.append(agent)
                wait_ready(agent, f"agent {s.site}-{host}")
    console.print(f"cells up: {', '.join(f'{s.cell} on 127.0.0.1:{ports[s.site]}' for s in SITES)}")
    return ports


async def _build_everywhere(
    console: Console, ports: dict[str, int], count: int
) -> dict[str, list[tuple[str, float]]]:
    """Builds `count` instances per cell; returns per site [(instance id, ack time)]."""
    flavor = common_pb2.Flavor(**asdict(FLAVORS["m1.small"]))
    built: dict[str, list[tuple[str, float]]] = {}
    table = Table(title="Instances built through each cell's API (libvirt test driver hosts)")
    for column in ("site", "instance", "host", "status", "build → ACTIVE"):
        table.add_column(column)
    for s in SITES:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[s.site]}") as channel:
            stub = cell_pb2_grpc.CellServiceStub(channel)
            await _wait_hosts(stub, 2)
            built[s.site] = []
            for n in range(count):
                iid = str(new_instance_id(s.cell, time.time_ns() // 1_000_000, random.getrandbits(80)))
                t0 = time.monotonic()
                await stub.BuildInstance(cell_pb2.BuildInstanceRequest(
                    instance_id=iid, tenant="demo", display_name=f"{s.site}-web-{n}", flavor=flavor,
                    image="debian-12"), timeout=10)  # fmt: skip
                built[s.site].append((iid, time.time()))
                inst = await _wait_active(stub, iid)
                table.add_row(s.city, iid, inst.host, common_pb2.InstanceStatus.Name(inst.status),
                              f"{(time.monotonic() - t0) * 1000:.0f} ms")  # fmt: skip
    console.print(table)
    return built


async def _wait_hosts(stub: cell_pb2_grpc.CellServiceStub, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = await stub.GetCellStatus(cell_pb2.GetCellStatusRequest(), timeout=5)
        if sum(h.up for h in status.hosts) >= count:
            return
        await asyncio.sleep(0.2)
    raise click.ClickException("compute agents did not register within 30 s; see .state/demo/logs")


async def _wait_active(stub: cell_pb2_grpc.CellServiceStub, iid: str) -> common_pb2.Instance:
    deadline = time.monotonic() + 30
    while True:
        inst: common_pb2.Instance = await stub.GetInstance(
            cell_pb2.CellInstanceRequest(instance_id=iid, tenant="demo"), timeout=5
        )
        if inst.status in (common_pb2.ACTIVE, common_pb2.ERROR) or time.monotonic() > deadline:
            return inst
        await asyncio.sleep(0.02)


async def _print_visibility(
    console: Console, sessions: dict[str, CqlSession], built: dict[str, list[tuple[str, float]]]
) -> None:
    """Each cell's index rows as read in every region's own DC, then a live probe per DC pair: write at
    LOCAL_QUORUM in one DC, poll at LOCAL level in another until the row is there."""
    from replication.cql.store import CqlStore

    stores = {r: CqlStore(sess, keyspace=GLOBAL_KEYSPACE) for r, sess in sessions.items()}
    table = Table(title="Index rows written by each cell in its own DC, as read locally in every DC")
    table.add_column("owner site")
    for s in SITES:
        table.add_column(f"read in {s.region}")
    for s in SITES:
        counts = []
        for reader in SITES:
            present = [await _present(stores[reader.region], iid) for iid, _ in built[s.site]]
            counts.append(f"{sum(present)}/{len(present)} rows")
        table.add_row(f"{s.city} ({s.region})", *counts)
    console.print(table)
    probe = Table(title="Live cross-DC visibility probe (20 index writes per pair; ms until readable)")
    for column in ("written in", "read in", "p50 ms", "max ms"):
        probe.add_column(column)
    for writer in SITES:
        for reader in SITES:
            if reader is not writer:
                lags = await _probe(stores[writer.region], stores[reader.region], writer.cell, 20)
                probe.add_row(
                    writer.region, reader.region, f"{statistics.median(lags):.1f}", f"{max(lags):.1f}"
                )
    console.print(probe)


async def _present(store: CqlStore, iid: str) -> bool:
    deadline = time.monotonic() + 10
    while True:
        try:
            await store.index.get(iid)
            return True
        except NotFound:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)


async def _probe(writer: CqlStore, reader: CqlStore, cell: str, count: int) -> list[float]:
    from replication.model import IndexEntry, InstanceStatus

    lags = []
    for _ in range(count):
        now_ms = time.time_ns() // 1_000_000
        iid = str(new_instance_id(cell, now_ms, random.getrandbits(80)))
        entry = IndexEntry(
            iid, cell, cell, "probe", "probe", "m1.tiny", InstanceStatus.ACTIVE, now_ms, now_ms
        )
        await writer.index.put(entry)
        t0 = time.perf_counter()
        while not await _present(reader, iid):
            pass
        lags.append((time.perf_counter() - t0) * 1000)
        await writer.index.delete(iid, at_ms=now_ms + 1)
    return lags
