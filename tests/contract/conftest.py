"""Fixtures of the store contract suite: `h`, one harness per implementation (tests/contract/harness.py).

Cassandra: one fresh global keyspace per test module on the session's 3-DC cluster, a session in
eu-west (the store's region) and one in us-east (a peer region for cross-region idempotency).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.contract.harness import LOCAL, PEER, Harness, cql_harness, memory_harness


@dataclass
class _CqlEnv:
    sessions: dict[str, Any]
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
            dcs=dict.fromkeys(cluster.dcs, 1),
            cells=[],
            known_dcs=await read_topology(local),
        )
        yield _CqlEnv({LOCAL: local, PEER: peer}, keyspace)
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
        return memory_harness(unique)
    env = request.getfixturevalue("cql_env")
    return cql_harness(env.sessions, env.keyspace, unique)
