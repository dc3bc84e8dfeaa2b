"""One harness over both store implementations, so the contract suite runs unchanged against each.

Cassandra: one fresh global keyspace per test module on the session's 3-DC cluster, a session in
eu-west (the store's region) and one in us-east (a peer region for cross-region idempotency). Tests share
the keyspace, so each test names its own tenants, sites and cells with `h.unique`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from replication.memory import ManualClock, MemoryStore
from replication.store import IdempotencyLedger, Store, TenantListing

LOCAL, PEER = "eu-west", "us-east"


@dataclass
class Harness:
    kind: str
    store: Store
    now_ms: Callable[[], int]
    advance: Callable[[float], Awaitable[None]]  # let time pass (a fake clock, or really sleep)
    ledger_in: Callable[[str], IdempotencyLedger]  # the claims as a router of that region sees them
    listing_with_budget: Callable[[int], TenantListing]
    unique: str


@dataclass
class _CqlEnv:
    local: Any
    peer: Any
    keyspace: str


@pytest.fixture(scope="module")
async def cql_env(cassandra_cluster: Any) -> AsyncIterator[_CqlEnv]:
    from replication.cql.migrate import apply_schema, read_topology
    from replication.cql.session import connect

    cluster = cassandra_cluster
    local = await asyncio.to_thread(connect, cluster.contact_points, LOCAL, port=cluster.port)
    peer = await asyncio.to_thread(connect, cluster.contact_points, PEER, port=cluster.port)
    keyspace = f"contract_{uuid.uuid4().hex[:10]}"
    try:
        await apply_schema(
            local,
            global_keyspace=keyspace,
            dcs={dc: 1 for dc in cluster.dcs},
            cells=[],
            known_dcs=await read_topology(local),
        )
        yield _CqlEnv(local, peer, keyspace)
        await local.execute(f"DROP KEYSPACE {keyspace}", timeout_s=30.0)
    finally:
        await local.aclose()
        await peer.aclose()


@pytest.fixture(params=["memory", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def h(request: pytest.FixtureRequest) -> Harness:
    # Sync on purpose: it pulls the (async, module-scoped) Cassandra fixture only for the cassandra param,
    # so `-m "not cassandra"` never starts a cluster.
    unique = uuid.uuid4().hex[:8]
    if request.param == "memory":
        return _memory_harness(unique)
    return _cql_harness(request.getfixturevalue("cql_env"), unique)


def _memory_harness(unique: str) -> Harness:
    clock = ManualClock()
    store = MemoryStore(clock.now_ms, region=LOCAL)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    return Harness(
        kind="memory",
        store=store,
        now_ms=clock.now_ms,
        advance=advance,
        ledger_in=store.idempotency.for_region,
        listing_with_budget=store.listing.with_scan_budget,
        unique=unique,
    )


def _cql_harness(env: _CqlEnv, unique: str) -> Harness:
    import time

    from replication.cql.idempotency import CqlIdempotency
    from replication.cql.store import CqlStore

    store = CqlStore(env.local, keyspace=env.keyspace, region=LOCAL)
    sessions = {LOCAL: env.local, PEER: env.peer}

    def ledger_in(region: str) -> IdempotencyLedger:
        # A claim's LWT must run in its own region's DC: use that DC's session.
        return CqlIdempotency(sessions[region], env.keyspace, region)

    return Harness(
        kind="cassandra",
        store=store,
        now_ms=lambda: int(time.time() * 1000),
        advance=asyncio.sleep,
        ledger_in=ledger_in,
        listing_with_budget=store.listing.with_scan_budget,
        unique=unique,
    )
