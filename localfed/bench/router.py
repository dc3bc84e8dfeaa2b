"""`cellfed bench router`: what routing costs. One site (a real Cassandra DC, a cell with a test-driver
host, a router, all processes, started by the same launcher as `cellfed up`) and, in one run: a get
through the router vs the same get straight to the cell (p50/p99 and throughput, side by side as
ratios), and listing page 1 vs page 50 over 10,000 rows of one tenant (keyset paging: a deep page should
cost what an early one does).

The 10,000 listing rows are written through the store's TenantListing, exactly as cells publish them,
without VMs behind them (the page cost is the listing's; enrichment finds them missing and serves the
rows). The gets are of real instances built through the router."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import grpc
from cellfed.v1 import cell_pb2, cell_pb2_grpc, compute_pb2, compute_pb2_grpc
from rich.console import Console
from rich.table import Table

from fedlib.ids import new_instance_id
from localfed.bench.options import cassandra_address_base
from localfed.bench.store import summarize
from localfed.launcher import LocalFederation
from localfed.paths import state_dir
from localfed.sites import SiteSpec

DC, SITE, CELL = "bench", "bench1", "bench1-c1"


@click.command("router")
@click.option("--gets", default=1000, show_default=True, type=click.IntRange(10, 100_000))
@click.option("--instances", default=100, show_default=True, type=click.IntRange(1, 2000))
@click.option("--list-rows", default=10_000, show_default=True, type=click.IntRange(1000, 100_000))
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(1, 256))
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@cassandra_address_base("127.0.0.51")
def router(
    gets: int,
    instances: int,
    list_rows: int,
    concurrency: int,
    directory: Path | None,
    output: str,
    address_base: str,
) -> None:
    """Routed vs direct get (latency, throughput) and list page 1 vs page 50, as ratios."""
    from localfed.bench.cell import _down

    root = (directory or state_dir() / "bench-router").absolute()
    try:
        results = asyncio.run(_run(root, gets, instances, list_rows, concurrency, address_base))
    finally:
        _down(root / "cassandra")
    if output == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        _print(results)


# One site, hosts big enough that capacity never refuses: this measures routing, not exhaustion.
SITE_SPEC = SiteSpec(SITE, DC, "Bench", 48.86, 2.35, vcpus=512, memory_mb=1_048_576, disk_gb=100_000, hosts=1)


async def _run(root: Path, gets: int, count: int, rows: int, conc: int, address_base: str) -> dict[str, Any]:
    """The launcher that runs `cellfed up` starts this one site, so what is measured is what users run."""
    from localfed.cassandra import cluster
    from localfed.cassandra.node_config import ClusterSpec

    spec = ClusterSpec(dcs=(DC,), nodes_per_dc=1, address_base=address_base, directory=root / "cassandra")
    await cluster.up(spec, apply_schema=False)
    points = [n.address for n in cluster.load(spec.directory).nodes]
    fed = LocalFederation(root, (SITE_SPEC,), points, {}, keyspace=f"bench_{uuid.uuid4().hex[:8]}")
    try:
        await fed.start()
        meta = (("authorization", f"Bearer {fed.tokens['acme']}"),)
        async with (
            grpc.aio.insecure_channel(fed.router(SITE)) as rch,
            grpc.aio.insecure_channel(f"127.0.0.1:{fed.cell_ports[SITE]}") as cch,
        ):
            routed, direct = compute_pb2_grpc.ComputeServiceStub(rch), cell_pb2_grpc.CellServiceStub(cch)
            ids = await _create(routed, meta, count)
            out = await _gets(routed, direct, meta, ids, gets, conc)
            await _fill_listing(fed.contact_points, fed.keyspace, rows)
            out["listing"] = await _pages(routed, meta, rows)
        return out
    finally:
        fed.stop()


async def _create(stub: compute_pb2_grpc.ComputeServiceStub, meta: Any, count: int) -> list[str]:
    ids: list[str] = []
    deadline = time.monotonic() + 30
    while True:  # the router learns the cell's capacity from its next published summary (every 2 s)
        req = compute_pb2.CreateInstanceRequest(
            request_id=uuid.uuid4().hex, display_name="first", flavor="m1.tiny", image="debian-12"
        )
        try:
            ids.append((await stub.CreateInstance(req, timeout=10, metadata=meta)).instance_id)
            break
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    for n in range(count - 1):
        req = compute_pb2.CreateInstanceRequest(
            request_id=uuid.uuid4().hex, display_name=f"g{n}", flavor="m1.tiny", image="debian-12"
        )
        ids.append((await stub.CreateInstance(req, timeout=10, metadata=meta)).instance_id)
    return ids


async def _gets(routed: Any, direct: Any, meta: Any, ids: list[str], n: int, conc: int) -> dict[str, Any]:
    def via_router(i: str) -> Awaitable[Any]:
        call: Awaitable[Any] = routed.GetInstance(
            compute_pb2.GetInstanceRequest(name=f"instances/{i}"), timeout=5, metadata=meta
        )
        return call

    def via_cell(i: str) -> Awaitable[Any]:
        call: Awaitable[Any] = direct.GetInstance(
            cell_pb2.CellInstanceRequest(instance_id=i, tenant="acme"), timeout=5
        )
        return call

    out: dict[str, Any] = {}
    for name, fn in (("direct", via_cell), ("routed", via_router)):
        await _timed(fn, ids, 50)  # warm channels and caches
        out[f"{name}_get_ms"] = asdict(summarize(await _timed(fn, ids, n)))
        started = time.perf_counter()
        await _concurrently(fn, ids, n, conc)
        out[f"{name}_get_per_s"] = round(n / (time.perf_counter() - started), 1)
    out["routed_over_direct_p50"] = round(out["routed_get_ms"]["p50_ms"] / out["direct_get_ms"]["p50_ms"], 2)
    out["routed_over_direct_p99"] = round(out["routed_get_ms"]["p99_ms"] / out["direct_get_ms"]["p99_ms"], 2)
    out["routed_over_direct_throughput"] = round(out["routed_get_per_s"] / out["direct_get_per_s"], 2)
    return out


async def _concurrently(fn: Callable[[str], Awaitable[Any]], ids: list[str], n: int, conc: int) -> None:
    slots = asyncio.Semaphore(conc)

    async def one(k: int) -> None:
        async with slots:
            await fn(ids[k % len(ids)])

    await asyncio.gather(*(one(k) for k in range(n)))


async def _timed(fn: Callable[[str], Awaitable[Any]], ids: list[str], n: int) -> list[float]:
    samples = []
    for k in range(n):
        t = time.perf_counter()
        await fn(ids[k % len(ids)])
        samples.append(time.perf_counter() - t)
    return samples


async def _fill_listing(points: list[str], keyspace: str, rows: int) -> None:
    from replication.cql.session import connect
    from replication.cql.store import CqlStore
    from replication.model import InstanceStatus, ListingEntry

    session = await asyncio.to_thread(connect, points, DC)
    store = CqlStore(session, keyspace=keyspace)
    slots = asyncio.Semaphore(64)
    base = time.time_ns() // 1_000_000 - rows

    async def put(n: int) -> None:
        iid = str(new_instance_id(CELL, base + n, random.getrandbits(80)))
        entry = ListingEntry(
            "acme", iid, f"list-{n:05d}", base + n, CELL, SITE, "m1.tiny", InstanceStatus.ACTIVE, base + n
        )
        async with slots:
            await store.listing.put(entry)

    try:
        await asyncio.gather(*(put(n) for n in range(rows)))
    finally:
        await session.aclose()


async def _pages(stub: Any, meta: Any, rows: int, repeats: int = 30) -> dict[str, Any]:
    size = max(1, rows // 50)
    tokens = [""]
    for _ in range(49):  # walk once to the token of page 50
        page = await stub.ListInstances(
            compute_pb2.ListInstancesRequest(page_size=size, page_token=tokens[-1]), timeout=10, metadata=meta
        )
        tokens.append(page.next_page_token)
    out: dict[str, Any] = {"page_size": size, "rows": rows}
    for label, token in (("page_1", tokens[0]), ("page_50", tokens[49])):
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            await stub.ListInstances(
                compute_pb2.ListInstancesRequest(page_size=size, page_token=token), timeout=10, metadata=meta
            )
            samples.append(time.perf_counter() - t)
        out[f"{label}_ms"] = asdict(summarize(samples))
    out["page_50_over_page_1_p50"] = round(out["page_50_ms"]["p50_ms"] / out["page_1_ms"]["p50_ms"], 2)
    return out


def _print(r: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="Get: through the router vs straight to the cell (one site, loopback)")
    for column in ("measure", "direct to cell", "through router", "router / direct"):
        table.add_column(column)
    d, g = r["direct_get_ms"], r["routed_get_ms"]
    table.add_row("p50 ms", str(d["p50_ms"]), str(g["p50_ms"]), str(r["routed_over_direct_p50"]))
    table.add_row("p99 ms", str(d["p99_ms"]), str(g["p99_ms"]), str(r["routed_over_direct_p99"]))
    table.add_row(
        "gets/s",
        str(r["direct_get_per_s"]),
        str(r["routed_get_per_s"]),
        str(r["routed_over_direct_throughput"]),
    )
    console.print(table)
    lst = r["listing"]
    pages = Table(title=f"List: page 1 vs page 50 over {lst['rows']} rows, {lst['page_size']} per page")
    for column in ("page", "p50 ms", "p99 ms"):
        pages.add_column(column)
    pages.add_row("1", str(lst["page_1_ms"]["p50_ms"]), str(lst["page_1_ms"]["p99_ms"]))
    pages.add_row("50", str(lst["page_50_ms"]["p50_ms"]), str(lst["page_50_ms"]["p99_ms"]))
    pages.add_row("50 / 1 (p50)", str(lst["page_50_over_page_1_p50"]), "")
    console.print(pages)
