"""What a first listing page reads on real Cassandra: live rows against tombstones, from query tracing.

Workload (bounded by --creates): one tenant, --creates listing puts spread over three cells, then deletes of
--delete-fraction of them (random), then the first page in each order. Every SELECT the listing adapter
issues for that page is replayed with tracing on, and the coordinator's and replicas' "Read N live and M
tombstone cells" events are summed. With `--rotate` (the generation layout) the three cells also run one
listing generation rotation (what the cell's re-assert sweep does every period) before a second read.

    .venv/bin/python tools/bench_listing_tombstones.py --contact-points 127.0.25.11 --local-dc eu-west

A benchmark, not a test: it prints figures. Cassandra 2.1 reports tombstones per replica read.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from typing import Any

import click

from fedlib.ids import new_instance_id
from replication.model import InstanceStatus, ListingEntry
from replication.paging import ListOrder, ListQuery

_READ = re.compile(r"Read (\d+) live and (\d+) tombstone")
_CELLS = ("cpar", "cams", "clis")


async def _first_page_reads(store: Any, session: Any, tenant: str, order: ListOrder) -> dict[str, int]:
    """Runs the first page, then replays each SELECT it issued with tracing to count what it read."""
    issued: list[tuple[Any, Any]] = []
    original = session.execute

    async def recording(statement: Any, params: Any = None, **kw: Any) -> Any:
        text = getattr(statement, "query_string", "")
        if text.lstrip().upper().startswith("SELECT"):
            issued.append((statement, params))
        return await original(statement, params, **kw)

    session.execute = recording
    try:
        page = await store.listing.list(ListQuery(tenant, order, page_size=50))
    finally:
        session.execute = original
    live = tombstones = 0
    for statement, params in issued:
        bound = statement.bind(params)
        bound.consistency_level = 6  # LOCAL_QUORUM
        rs = await asyncio.to_thread(session._session.execute, bound, trace=True)
        # system_traces is SimpleStrategy: LOCAL_ONE may find no local replica, ONE always does
        trace = await asyncio.to_thread(rs.response_future.get_query_trace, 10.0, 1)
        for event in trace.events:
            m = _READ.search(event.description)
            if m:
                live += int(m.group(1))
                tombstones += int(m.group(2))
    return {
        "selects": len(issued),
        "live_cells": live,
        "tombstone_cells": tombstones,
        "page": len(page.entries),
    }


def _entry(tenant: str, n: int, rng: random.Random, t0: int) -> ListingEntry:
    cell = _CELLS[n % len(_CELLS)]
    return ListingEntry(
        tenant=tenant,
        instance_id=str(new_instance_id(cell, t0 + n, rng.getrandbits(80))),
        name=f"vm-{rng.randrange(10**6):06d}",
        created_at_ms=t0 + n,
        owner_cell=cell,
        site_id=cell[1:],
        flavor="m1-small",
        status=InstanceStatus.ACTIVE,
        updated_at_ms=t0 + n,
    )


async def _run(contact_points: str, local_dc: str, creates: int, fraction: float, rotate: bool) -> None:
    from replication.cql.migrate import apply_schema, read_topology
    from replication.cql.session import connect
    from replication.cql.store import CqlStore

    session = await asyncio.to_thread(connect, contact_points.split(","), local_dc)
    keyspace = f"bench_tomb_{uuid.uuid4().hex[:8]}"
    topology = await read_topology(session)
    await apply_schema(session, global_keyspace=keyspace, dcs=dict.fromkeys(topology, 1), cells=[],
                       known_dcs=topology)  # fmt: skip
    store = CqlStore(session, keyspace=keyspace, region=local_dc)
    rng, tenant, t0 = random.Random(15), "bench", int(time.time() * 1000) - 10 * creates
    entries = [_entry(tenant, n, rng, t0) for n in range(creates)]
    sem = asyncio.Semaphore(32)

    async def bounded(coro: Any) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(bounded(store.listing.put(e)) for e in entries))
    doomed = rng.sample(entries, int(len(entries) * fraction))
    now = int(time.time() * 1000)
    await asyncio.gather(*(bounded(store.listing.delete(e, at_ms=now)) for e in doomed))
    report: dict[str, Any] = {"creates": creates, "deleted": len(doomed), "keyspace": keyspace}
    for order in (ListOrder.CREATED_ASC, ListOrder.CREATED_DESC, ListOrder.NAME_ASC):
        report[f"after deletes, {order.value}"] = await _first_page_reads(store, session, tenant, order)
    if rotate:
        gone = {e.instance_id for e in doomed}
        live = [e for e in entries if e.instance_id not in gone]
        await _rotate_twice(store, live)
        for order in (ListOrder.CREATED_ASC, ListOrder.CREATED_DESC, ListOrder.NAME_ASC):
            report[f"after rotation, {order.value}"] = await _first_page_reads(store, session, tenant, order)
    print(json.dumps(report, indent=2))
    await session.execute(f"DROP KEYSPACE {keyspace}", timeout_s=60.0)
    await session.aclose()


async def _rotate_twice(store: Any, live: list[ListingEntry]) -> None:
    """What each cell's sweep does: open a generation, re-assert its live rows, commit (twice, so the
    generation holding the deletes is retired and dropped)."""
    for _ in range(2):
        for cell in _CELLS:
            mine = [e for e in live if e.owner_cell == cell]
            at = int(time.time() * 1000)
            await store.listing.open_generation(cell, at_ms=at)
            for e in mine:
                await store.listing.put(e)
            await store.listing.commit_generation(cell, sorted({e.tenant for e in mine}), at_ms=at + 1)


@click.command()
@click.option("--contact-points", required=True)
@click.option("--local-dc", default="eu-west", show_default=True)
@click.option("--creates", default=2000, show_default=True)
@click.option("--delete-fraction", default=0.9, show_default=True)
@click.option("--rotate/--no-rotate", default=False, show_default=True)
def main(contact_points: str, local_dc: str, creates: int, delete_fraction: float, rotate: bool) -> None:
    asyncio.run(_run(contact_points, local_dc, min(max(creates, 10), 20_000), delete_fraction, rotate))


if __name__ == "__main__":
    main()
