"""Schema migration against the real 3-DC cluster: versioned, idempotent, validated before any write,
cell keyspaces confined to their DC, and a cell-owned key claimable from its own DC only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fedlib.errors import ConfigError, Unavailable
from fedlib.names import keyspace_for_cell
from replication.cql.migrate import apply_schema, current_version, keyspace_replication, read_topology
from replication.cql.session import CqlSession, connect

pytestmark = pytest.mark.cassandra


@pytest.fixture(scope="module")
async def sessions(cassandra_cluster: Any) -> AsyncIterator[dict[str, CqlSession]]:
    out = {}
    for dc in ("eu-west", "us-east"):
        out[dc] = await asyncio.to_thread(
            connect, cassandra_cluster.contact_points, dc, port=cassandra_cluster.port
        )
    yield out
    for session in out.values():
        await session.aclose()


def _names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"schema_{tag}", f"par-{tag}", f"nyc-{tag}"


async def test_apply_twice_is_a_noop_and_records_the_version(sessions: dict[str, CqlSession]) -> None:
    s = sessions["eu-west"]
    ks, par, nyc = _names()
    topo = await read_topology(s)
    assert topo == {"eu-west": 1, "us-east": 1, "ap-south": 1}
    args: dict[str, Any] = dict(global_keyspace=ks, dcs=dict.fromkeys(topo, 1), known_dcs=topo)
    first = await apply_schema(s, cells=[(par, "eu-west")], **args)
    assert [(a.keyspace, a.from_version, a.to_version) for a in first] == [
        (ks, 0, 5),
        (keyspace_for_cell(par), 0, 2),
    ]
    again = await apply_schema(s, cells=[(par, "eu-west"), (nyc, "us-east")], **args)
    assert [(a.from_version, a.to_version, a.replication_changed) for a in again] == [
        (5, 5, False),
        (2, 2, False),
        (0, 2, False),  # only the new cell's keyspace is created
    ]
    rows = (
        await s.execute(f"SELECT version, description FROM {ks}.schema_version", consistency="QUORUM")
    ).rows
    assert [r["version"] for r in rows] == [5, 4, 3, 2, 1]
    assert await current_version(s, keyspace_for_cell(nyc)) == 2


async def test_v1_keyspace_migrates_to_v2_even_after_a_run_that_died_half_way(
    sessions: dict[str, CqlSession],
) -> None:
    from replication.cql import migrate
    from replication.cql.store import CqlStore
    from replication.model import CapacitySummary, RouterReport
    from replication.schema import KeyspacePlan, global_migrations

    s = sessions["eu-west"]
    topo = await read_topology(s)
    ks, _, _ = _names()
    dcs = dict.fromkeys(topo, 1)
    v1 = KeyspacePlan(ks, dcs, global_migrations(ks)[:1])
    system = await migrate._SystemSchema.detect(s)
    await migrate._apply_one(s, system, v1, asyncio.Semaphore(1))
    await s.execute(
        f"INSERT INTO {ks}.capacity (bucket, cell_id, vcpus_total, vcpus_free, mem_mb_total, mem_mb_free, "
        "disk_gb_total, disk_gb_free, instances, hosts_up, updated_at) VALUES (0, 'old-c1', 8, 8, 1, 1, "
        "1, 1, 0, 1, 1)",
        consistency="LOCAL_QUORUM",
    )
    # A v2 run that died after its ALTER and before recording the version: the column exists already.
    await s.execute(f"ALTER TABLE {ks}.capacity ADD instances_by_status map<text, int>", timeout_s=30.0)
    await migrate.wait_for_schema_agreement(s)
    applied = await apply_schema(s, global_keyspace=ks, dcs=dcs, cells=[], known_dcs=topo)
    assert [(a.from_version, a.to_version) for a in applied] == [(1, 5)]
    store = CqlStore(s, keyspace=ks)
    assert (await store.capacity.get("old-c1")).instances_by_status == {}  # a row from before v2
    await store.capacity.publish(CapacitySummary("new-c1", 8, 6, 1, 1, 1, 1, 2, 1, 5, {"ACTIVE": 2}))
    assert (await store.capacity.get("new-c1")).instances_by_status == {"ACTIVE": 2}
    await store.routers.publish_report(RouterReport("par1-r1", "par1", 5, 1000, 1.0, 0.0, 2.0, {"par1": 1}))
    assert [r.rtt_ms for r in await store.routers.reports()] == [{"par1": 1.0}]


async def test_bad_topology_is_refused_before_anything_is_written(sessions: dict[str, CqlSession]) -> None:
    s = sessions["eu-west"]
    topo = await read_topology(s)
    ks, par, _ = _names()
    bad = [
        ({"eu-west": 2, "us-east": 1}, [(par, "eu-west")], "dcs.eu-west"),  # rf 2 > 1 node
        ({"eu-west": 1, "mars-1": 1}, [(par, "eu-west")], "dcs.mars-1"),  # no such DC
        ({"eu-west": 1}, [(par, "us-east")], f"cells.{par}"),  # cell in a DC the keyspace skips
    ]
    for dcs, cells, field in bad:
        with pytest.raises(ConfigError) as err:
            await apply_schema(s, global_keyspace=ks, dcs=dcs, cells=cells, known_dcs=topo)
        assert err.value.field == field
    assert await keyspace_replication(s, ks) is None
    assert await keyspace_replication(s, keyspace_for_cell(par)) is None


async def test_cell_keyspace_lives_only_in_its_dc(sessions: dict[str, CqlSession]) -> None:
    s = sessions["eu-west"]
    topo = await read_topology(s)
    ks, par, nyc = _names()
    cells = [(par, "eu-west"), (nyc, "us-east")]
    await apply_schema(s, global_keyspace=ks, dcs=dict.fromkeys(topo, 1), cells=cells, known_dcs=topo)
    assert await keyspace_replication(s, ks) == {"eu-west": 1, "us-east": 1, "ap-south": 1}
    assert await keyspace_replication(s, keyspace_for_cell(par)) == {"eu-west": 1}
    assert await keyspace_replication(s, keyspace_for_cell(nyc)) == {"us-east": 1}


_CLAIM = (
    "INSERT INTO {ks}.capacity_claims (host_id, instance_id, vcpus, mem_mb, disk_gb, claimed_at) "
    "VALUES (?, ?, 1, 512, 1, 0) IF NOT EXISTS"
)


async def _claim(session: CqlSession, ks: str, host: str, who: str) -> str:
    try:
        result = await session.execute(
            await session.prepare(_CLAIM.format(ks=ks)),
            (host, who),
            consistency="LOCAL_QUORUM",
            serial_consistency="LOCAL_SERIAL",
        )
    except Unavailable:
        return "unavailable"  # a DC without replicas of the cell keyspace cannot even run the Paxos round
    return "won" if result.applied else "lost"


async def test_two_dcs_racing_for_a_cell_owned_key_cannot_both_win(sessions: dict[str, CqlSession]) -> None:
    s = sessions["eu-west"]
    topo = await read_topology(s)
    ks, par, _ = _names()
    await apply_schema(
        s, global_keyspace=ks, dcs=dict.fromkeys(topo, 1), cells=[(par, "eu-west")], known_dcs=topo
    )
    cell_ks = keyspace_for_cell(par)
    for round_ in range(20):
        host = f"host-{round_}"
        # Same key (host, instance "slot"), claimed at once from the owner's DC and from a foreign DC.
        won = await asyncio.gather(
            _claim(sessions["eu-west"], cell_ks, host, "slot"),
            _claim(sessions["us-east"], cell_ks, host, "slot"),
        )
        assert list(won) == ["won", "unavailable"], (round_, won)
    # And a second claim from the owner's DC loses to the first.
    assert await _claim(sessions["eu-west"], cell_ks, "host-0", "slot") == "lost"
