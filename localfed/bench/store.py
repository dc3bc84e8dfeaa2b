"""`cellfed bench store`: latency of the store layer on a running cluster, as users' requests see it.

Measures, each bounded by --n: instance-index writes and reads at LOCAL_QUORUM, idempotency claims (LWT at
LOCAL_SERIAL), cross-DC visibility lag (write in the local DC, poll LOCAL_ONE in a remote DC until the row
shows; at most 200 samples, 2 s each). Then the cost of a deep listing page against page 2 over one
tenant of 1,500-4,000 entries (--n clamped to that range; keyset paging: the ratio should stay near 1).
Everything is sequential, so the numbers are latencies, not throughput. Read them as ratios on a shared box.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fedlib.errors import CellfedError
from fedlib.ids import new_instance_id

if TYPE_CHECKING:  # the driver loads only when the command runs, not when `cellfed --help` does
    from replication.cql.session import CqlSession
    from replication.cql.store import CqlStore

_LAG_TIMEOUT_S = 2.0
_PAGE = 50
# The listing test needs depth to mean anything: at least 30 pages, at most 80 whatever --n says.
_LISTING_MIN, _LISTING_MAX = 30 * _PAGE, 80 * _PAGE


@dataclass(frozen=True)
class Summary:
    n: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def summarize(samples_s: Sequence[float]) -> Summary:
    """Nearest-rank percentiles of latencies given in seconds, reported in milliseconds."""
    if not samples_s:
        return Summary(0, math.nan, math.nan, math.nan)
    ordered = sorted(samples_s)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    return Summary(len(ordered), round(rank(0.5), 3), round(rank(0.99), 3), round(ordered[-1] * 1000, 3))


async def _timed(n: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        await op(i)
        out.append(time.perf_counter() - start)
    return out


async def run_bench(
    contact_points: list[str], port: int, local_dc: str, remote_dc: str | None, keyspace: str, rf: int, n: int
) -> dict[str, Any]:
    from replication.cql.migrate import apply_schema, read_topology
    from replication.cql.session import connect
    from replication.cql.store import CqlStore

    local = await asyncio.to_thread(connect, contact_points, local_dc, port=port)
    remote = await asyncio.to_thread(connect, contact_points, remote_dc, port=port) if remote_dc else None
    try:
        topology = await read_topology(local)
        await apply_schema(
            local, global_keyspace=keyspace, dcs=dict.fromkeys(topology, rf), cells=[], known_dcs=topology
        )
        store = CqlStore(local, keyspace=keyspace, region=local_dc)
        results: dict[str, Any] = {"local_dc": local_dc, "remote_dc": remote_dc, "n": n, "topology": topology}
        results.update(await _index_and_claims(store, local_dc, n))
        if remote is not None:
            results["visibility_lag"] = await _visibility_lag(store, remote, keyspace, min(n, 200))
        results.update(await _listing_depth(store, min(max(n, _LISTING_MIN), _LISTING_MAX)))
        return results
    finally:
        await local.aclose()
        if remote is not None:
            await remote.aclose()


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def _index_and_claims(store: CqlStore, region: str, n: int) -> dict[str, Any]:
    from replication.model import IdempotencyRecord, IndexEntry, InstanceStatus

    cell, tag, now = f"bench-{_tag()}", _tag(), int(time.time() * 1000)
    ids = [str(new_instance_id(cell, now, i)) for i in range(n)]

    def entry(i: int) -> IndexEntry:
        return IndexEntry(ids[i], cell, cell, "bench", f"vm-{i}", "m1", InstanceStatus.ACTIVE, now, now + 1)

    writes = await _timed(n, lambda i: store.index.put(entry(i)))
    reads = await _timed(n, lambda i: store.index.get(ids[i]))

    def claim(i: int) -> Awaitable[object]:
        record = IdempotencyRecord(region, "bench", f"r{tag}-{i}", ids[i], "fp", now)
        return store.idempotency.claim(record, ttl_s=600)

    claims = await _timed(n, claim)
    return {
        "index_write_local_quorum": asdict(summarize(writes)),
        "index_read_local_quorum": asdict(summarize(reads)),
        "claim_lwt_local_serial": asdict(summarize(claims)),
    }


async def _visibility_lag(store: CqlStore, remote: CqlSession, keyspace: str, n: int) -> dict[str, Any]:
    """Time from the local write's acknowledgement until a LOCAL_ONE read in the remote DC sees it."""
    from replication.model import IndexEntry, InstanceStatus

    cell, now = f"lag-{_tag()}", int(time.time() * 1000)
    select = await remote.prepare(f"SELECT instance_id FROM {keyspace}.instance_index WHERE instance_id = ?")
    lags, timeouts = [], 0
    for i in range(n):
        iid = str(new_instance_id(cell, now, i))
        await store.index.put(
            IndexEntry(iid, cell, cell, "bench", "vm", "m1", InstanceStatus.ACTIVE, now, now)
        )
        acked = time.perf_counter()
        while not (await remote.execute(select, (iid,), consistency="LOCAL_ONE")).rows:
            if time.perf_counter() - acked > _LAG_TIMEOUT_S:
                timeouts += 1
                break
        else:
            lags.append(time.perf_counter() - acked)
    return {**asdict(summarize(lags)), "timeouts": timeouts}


async def _listing_depth(store: CqlStore, count: int) -> dict[str, Any]:
    """Page 2 against a deep page of one tenant's listing: keyset paging keeps them alike.

    The deep page is the deepest one with SHARDS pages after it, so every shard still has a full chunk to
    return, as for page 2 (the tail pages read less and would flatter the ratio)."""
    from replication.model import InstanceStatus, ListingEntry
    from replication.paging import SHARDS, ListQuery

    tenant, now = f"bench-{_tag()}", int(time.time() * 1000)
    for i in range(count):
        iid = str(new_instance_id("cbench", now + i, i))
        status = InstanceStatus.ACTIVE
        await store.listing.put(
            ListingEntry(tenant, iid, f"vm-{i:05d}", now + i, "cbench", "bench", "m1", status, now)
        )
    tokens: list[str | None] = [None]
    while True:
        result = await store.listing.list(ListQuery(tenant, page_size=_PAGE, page_token=tokens[-1]))
        if result.next_token is None:
            break
        tokens.append(result.next_token)
    deep = max(1, len(tokens) - 1 - SHARDS)
    second: list[float] = []
    deeper: list[float] = []
    for _ in range(20):  # interleaved, so warm-up and load drift hit both alike
        for token, samples in ((tokens[1], second), (tokens[deep], deeper)):
            start = time.perf_counter()
            await store.listing.list(ListQuery(tenant, page_size=_PAGE, page_token=token))
            samples.append(time.perf_counter() - start)
    p2, pn = summarize(second), summarize(deeper)
    return {
        "listing_entries": count,
        "listing_pages": len(tokens),
        "listing_deep_page_number": deep + 1,
        "listing_page_2": asdict(p2),
        "listing_deep_page": asdict(pn),
        "listing_deep_over_page_2_p50": round(pn.p50_ms / p2.p50_ms, 2),
    }


def _from_dir(directory: Path) -> tuple[list[str], int, tuple[str, ...], int]:
    from localfed.cassandra import cluster

    loaded = cluster.load(directory.absolute())
    return loaded.contact_points, loaded.spec.ports.native, loaded.spec.dcs, loaded.spec.rf


@click.command("store")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of a cluster started by `cellfed cassandra up`.",
)
@click.option("--contact-points", default=None, help="Comma-separated addresses (instead of --dir).")
@click.option("--port", default=9042, show_default=True)
@click.option("--local-dc", default=None, help="DC the requests run in (default: the cluster's first).")
@click.option(
    "--remote-dc", default=None, help="DC polled for visibility lag (default: the cluster's second)."
)
@click.option("--keyspace", default="cellfed_bench", show_default=True, help="Scratch global keyspace.")
@click.option("--rf", default=1, show_default=True, help="Replication factor per DC (with --contact-points).")
@click.option(
    "--n", "n", default=300, show_default=True, type=click.IntRange(1, 20_000), help="Samples per test."
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def store(
    directory: Path | None,
    contact_points: str | None,
    port: int,
    local_dc: str | None,
    remote_dc: str | None,
    keyspace: str,
    rf: int,
    n: int,
    output: str,
) -> None:
    """p50/p99 of index reads/writes, LWT claims, cross-DC visibility lag and deep listing pages."""
    if directory is not None:
        points, port, dcs, rf = _from_dir(directory)
        local_dc = local_dc or dcs[0]
        remote_dc = remote_dc or next((dc for dc in dcs if dc != local_dc), None)
    elif contact_points and local_dc:
        points = [p.strip() for p in contact_points.split(",") if p.strip()]
    else:
        raise click.UsageError("give --dir, or --contact-points with --local-dc")
    try:
        results = asyncio.run(run_bench(points, port, local_dc, remote_dc, keyspace, rf, n))
    except CellfedError as exc:
        raise click.ClickException(exc.message) from exc
    if output == "json":
        click.echo(json.dumps(results, indent=2))
        return
    _print(results)


def _print(results: dict[str, Any]) -> None:
    click.echo(
        f"store bench: local dc {results['local_dc']}, remote dc {results['remote_dc']}, n={results['n']}"
    )
    click.echo(f"{'measure':34} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for key, value in results.items():
        if isinstance(value, dict) and "p50_ms" in value:
            extra = f"  timeouts={value['timeouts']}" if "timeouts" in value else ""
            numbers = (
                f"{value['n']:>6} {value['p50_ms']:>9.3f} {value['p99_ms']:>9.3f} {value['max_ms']:>9.3f}"
            )
            click.echo(f"{key:34} {numbers}{extra}")
    if "listing_deep_over_page_2_p50" in results:
        r = results
        click.echo(
            f"listing: {r['listing_entries']} entries, {r['listing_pages']} pages of {_PAGE}; "
            f"page {r['listing_deep_page_number']} / page 2 (p50) = {r['listing_deep_over_page_2_p50']}"
        )
