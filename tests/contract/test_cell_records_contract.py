"""A cell's own records, on the memory twin and on Cassandra (a cell keyspace of the session's cluster),
held to the same assertions: instance rows (last version wins whatever order they land in), hosts, and
the high-water marks of the cell's sequences (never lowered)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fedlib.errors import InvalidArgument, NotFound
from fedlib.names import keyspace_for_cell
from replication.cell_records import CellRecords, HostRow, InstanceRow
from replication.memory_cell import MemoryCellRecords

DC = "eu-west"


@pytest.fixture(scope="module")
async def cql_records(cassandra_cluster: Any) -> AsyncIterator[Any]:
    from replication.cql.cell_records import CqlCellRecords
    from replication.cql.migrate import apply_schema, read_topology
    from replication.cql.session import connect

    cluster = cassandra_cluster
    session = await asyncio.to_thread(connect, cluster.contact_points, DC, port=cluster.port)
    cell = f"ct{uuid.uuid4().hex[:8]}"
    keyspace = f"contract_g{uuid.uuid4().hex[:8]}"
    try:
        await apply_schema(session, global_keyspace=keyspace, dcs=dict.fromkeys(cluster.dcs, 1),
                           cells=[(cell, DC)], known_dcs=await read_topology(session))  # fmt: skip
        yield CqlCellRecords(session, keyspace_for_cell(cell))
        for ks in (keyspace_for_cell(cell), keyspace):
            await session.execute(f"DROP KEYSPACE {ks}", timeout_s=30.0)
    finally:
        await session.aclose()


@pytest.fixture(params=["memory", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def records(request: pytest.FixtureRequest) -> CellRecords:
    if request.param == "memory":
        return MemoryCellRecords()
    return request.getfixturevalue("cql_records")  # type: ignore[no-any-return]


def _row(iid: str, version: int, status: str = "ACTIVE") -> InstanceRow:
    return InstanceRow(iid, "acme", "vm", "m1.small", "debian-12", "h1", status, version, 1_000,
                       1_000 + version, spec_json='{"ports": []}')  # fmt: skip


async def test_the_newest_version_of_an_instance_wins_in_any_order(records: CellRecords) -> None:
    iid = f"par1-c1.{uuid.uuid4().int % 10**20:026d}"
    with pytest.raises(NotFound):
        await records.get_instance(iid)
    await records.put_instance(_row(iid, 3))
    await records.put_instance(_row(iid, 2, "BUILDING"))  # older, late
    assert await records.get_instance(iid) == _row(iid, 3)
    assert iid in {r.instance_id for r in await records.load_instances()}


async def test_hosts_are_kept_and_listed(records: CellRecords) -> None:
    host = HostRow(f"h-{uuid.uuid4().hex[:6]}", 8, 16_384, 100, 4.0, 1.0, "test:///default", False, 5)
    await records.put_host(host)
    assert host in await records.load_hosts()


async def test_a_high_water_mark_is_never_lowered(records: CellRecords) -> None:
    name = f"seq_{uuid.uuid4().hex[:6]}"
    assert await records.high_water(name) == 0
    await records.raise_high_water(name, 2048)
    await records.raise_high_water(name, 1024)  # an older reservation landing late
    assert await records.high_water(name) == 2048
    await records.raise_high_water(name, 3072)
    assert await records.high_water(name) == 3072
    for bad_name, value, field in (("Bad Name", 1, "name"), (name, 0, "value"), (name, True, "value")):
        with pytest.raises(InvalidArgument) as exc:
            await records.raise_high_water(bad_name, value)  # type: ignore[arg-type]
        assert exc.value.field == field
