"""Reads every source of truth of a running local federation into a chaos Snapshot (the thin edge of the
checker): each router's listing (through the SDK, index data only: what that router's DC holds), the
instance index in every Cassandra DC (LOCAL_ONE there: what that replica has), every cell's records (its
cell keyspace, in its DC), and the cellfed domains libvirt holds on every host, as each agent counts
them from listAllDomains (its `cellfed_agent_domains` gauge: the test driver's hypervisor lives inside
the agent process, so its metrics are the only outside view of it). Every read has a deadline; a source
that cannot be read is named as unreadable, never reported as empty."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

from cellapi.client import Client
from fedlib.errors import CellfedError
from fedlib.names import keyspace_for_cell
from localfed.bench.chaos_model import IndexRow, Record, Snapshot
from localfed.launcher import LocalFederation

READ_TIMEOUT_S = 10.0


async def snapshot(fed: LocalFederation, token: str) -> Snapshot:
    listings, index, records, domains, unreadable = {}, {}, {}, {}, []
    for s in fed.router_sites():
        try:
            listings[s.site] = await _listing(fed.router(s.site), token)
        except CellfedError as exc:
            unreadable.append(f"listing at {s.site}: {exc.message}")
    for s in fed.sites:
        try:
            index[s.region], records[s.cell] = await _cassandra(fed, s.region, s.cell)
        except CellfedError as exc:
            unreadable.append(f"Cassandra {s.region}: {exc.message}")
    for name, port in fed.metrics_ports.items():
        if name.startswith("agent:"):
            try:
                domains[name.partition(":")[2]] = await asyncio.to_thread(_domains, port)
            except OSError as exc:
                unreadable.append(f"{name} metrics: {exc}")
    return Snapshot(int(time.time() * 1000), listings, index, records, domains, tuple(unreadable))


async def _listing(router: str, token: str) -> dict[str, str]:
    from cellfed.v1 import common_pb2

    client = Client([router], token, timeout_s=READ_TIMEOUT_S)
    out: dict[str, str] = {}
    try:
        page_token = ""
        for _ in range(200):  # bounded: 200 pages of 500
            page = await client.list(page_size=500, page_token=page_token, skip_enrichment=True)
            out.update({i.instance_id: common_pb2.InstanceStatus.Name(i.status) for i in page.instances})
            page_token = page.next_page_token
            if not page_token:
                return out
    finally:
        await client.close()
    raise RuntimeError("listing longer than 100,000 instances")


async def _cassandra(
    fed: LocalFederation, dc: str, cell: str
) -> tuple[dict[str, IndexRow], dict[str, Record]]:
    """The index as `dc`'s replica holds it, and `cell`'s records (its keyspace lives in `dc`)."""
    from replication.cql.cell_records import CqlCellRecords
    from replication.cql.session import connect

    session = await asyncio.to_thread(connect, fed.contact_points, dc, timeout_s=READ_TIMEOUT_S, retries=1)
    try:
        result = await session.execute(
            f"SELECT instance_id, owner_cell, tenant, status FROM {fed.keyspace}.instance_index",
            consistency="LOCAL_ONE",
            fetch_size=100_000,
        )
        index = {
            r["instance_id"]: IndexRow(r["instance_id"], r["owner_cell"], r["tenant"], r["status"])
            for r in result.rows
        }
        rows = await CqlCellRecords(session, keyspace_for_cell(cell)).load_instances()
        records = {r.instance_id: _record(r, cell) for r in rows}
    finally:
        await session.aclose()
    return index, records


def _record(row: Any, cell: str) -> Record:
    import json

    try:
        request_id = str(json.loads(row.spec_json or "{}").get("request_id", ""))
    except ValueError:
        request_id = ""
    return Record(row.instance_id, cell, row.tenant, request_id, row.status, row.host_id, row.updated_ms)


def _domains(port: int) -> int:
    """The cellfed domains an agent last saw on its host (every power state)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=READ_TIMEOUT_S) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("cellfed_agent_domains{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
