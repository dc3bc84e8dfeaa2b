"""Brings the global keyspace and the cell keyspaces to the latest version of replication.schema.

Idempotent and versioned: each keyspace records applied versions in its `schema_version` table; a run
applies only newer migrations, waits for schema agreement after each, then records it. Added columns are
checked against the live schema first, so a migration that died half-way re-runs cleanly. The topology is
validated (replication.schema.plan_schema) before the first statement, so a bad setting writes nothing.

Run it from one process at a time (the deployment's migration step), not from every router at start:
Cassandra 2.1 can split schema when two nodes create the same table concurrently.
Off the request path, so the version bookkeeping uses QUORUM: a cell keyspace lives in one DC only and
the migrating session may sit in another, where LOCAL_* levels have no replica to ask.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedlib.errors import DeadlineExceeded, StoreError, Unavailable
from replication.cql.federation_rows import CqlSecrets
from replication.cql.listing_copy import copy_listing_to_generations
from replication.cql.session import CqlSession
from replication.paging import LISTING_TOKEN_KEY, new_token_key
from replication.schema import (
    LISTING_COPY,
    KeyspacePlan,
    alter_keyspace,
    create_keyspace,
    plan_schema,
)

log = logging.getLogger(__name__)

_DDL_TIMEOUT_S = 30.0
_DDL_ATTEMPTS = 3
# Schema changes all go through one coordinator's migration stage: a few at once hide the driver's
# per-statement agreement wait, hundreds (many cells) would only queue there and time out.
_DDL_CONCURRENCY = 6
_AGREEMENT_TIMEOUT_S = 30.0
_TOPOLOGY_ATTEMPTS = 20
_NTS = "NetworkTopologyStrategy"
# The data steps a migration names (replication.schema.Migration.copies), run after its DDL.
_COPIES: dict[str, Callable[[CqlSession, str], Awaitable[int]]] = {LISTING_COPY: copy_listing_to_generations}


@dataclass(frozen=True)
class Applied:
    keyspace: str
    from_version: int
    to_version: int
    replication_changed: bool


async def read_topology(session: CqlSession) -> dict[str, int]:
    """DC -> node count, from system.local and system.peers of one node.

    The two reads may land on different coordinators, which would drop one node and count another
    twice; a node never lists itself in its own peers, so a local row whose host also shows up in peers
    proves a mismatch and we ask again.
    """
    for _ in range(_TOPOLOGY_ATTEMPTS):
        local = await session.execute("SELECT host_id, data_center FROM system.local", consistency="ONE")
        peers = await session.execute("SELECT host_id, data_center FROM system.peers", consistency="ONE")
        if not local.rows:
            continue
        me = local.rows[0]
        if any(row["host_id"] == me["host_id"] for row in peers.rows):
            continue
        counts: dict[str, int] = {}
        for row in [me, *peers.rows]:
            counts[row["data_center"]] = counts.get(row["data_center"], 0) + 1
        return counts
    raise StoreError(f"cassandra dc {session.local_dc}: could not read a consistent topology")


async def apply_schema(
    session: CqlSession,
    *,
    global_keyspace: str,
    dcs: Mapping[str, int],
    cells: Sequence[tuple[str, str]],
    known_dcs: Mapping[str, int],
) -> list[Applied]:
    """Validate, then create or migrate every keyspace; returns what changed (empty lists mean no-op)."""
    plans = plan_schema(global_keyspace=global_keyspace, dcs=dcs, cells=cells, known_dcs=known_dcs)
    system = await _SystemSchema.detect(session)
    limit = asyncio.Semaphore(_DDL_CONCURRENCY)
    # Keyspaces are independent of each other; DDL on distinct tables may run at once.
    applied = list(await asyncio.gather(*(_apply_one(session, system, plan, limit) for plan in plans)))
    # The deployment's own page-token key, made once (whoever applies first wins the LWT): a listing
    # token of one federation means nothing to another, and no key is in the source.
    await CqlSecrets(session, global_keyspace).get_or_create(LISTING_TOKEN_KEY, new_token_key)
    return applied


async def _apply_one(
    session: CqlSession, system: _SystemSchema, plan: KeyspacePlan, limit: asyncio.Semaphore
) -> Applied:
    ks = plan.keyspace
    current = await system.replication(ks)
    changed = False
    if current is None:
        await _ddl(session, create_keyspace(ks, plan.replication), limit)
    elif current != plan.replication:
        # A new DC's nodes still need `nodetool rebuild` to stream existing rows; that is an operator step.
        log.warning("keyspace %s replication %s -> %s", ks, current, plan.replication)
        await _ddl(session, alter_keyspace(ks, plan.replication), limit)
        changed = True
    version = await _version(session, system, ks)
    for migration in plan.migrations:
        if migration.version <= version:
            continue
        log.info("keyspace %s: applying v%d (%s)", ks, migration.version, migration.description)
        if migration.independent:
            await asyncio.gather(*(_ddl(session, statement, limit) for statement in migration.statements))
        else:
            for statement in migration.statements:
                await _ddl(session, statement, limit)
        # Cassandra 2.1 has no ADD IF NOT EXISTS: a run that died after an ALTER must not repeat it.
        missing = [c for c in migration.columns if not await system.has_column(ks, c.table, c.name)]
        if migration.independent and len({c.table for c in missing}) == len(missing):
            await asyncio.gather(*(_ddl(session, c.statement(ks), limit) for c in missing))
        else:  # two on one table go one after the other
            for column in missing:
                await _ddl(session, column.statement(ks), limit)
        for copy in migration.copies:
            await _COPIES[copy](session, ks)
        await session.execute(
            f"INSERT INTO {ks}.schema_version (scope, version, description, applied_at) "
            "VALUES ('schema', %s, %s, %s)",
            (migration.version, migration.description, int(time.time() * 1000)),
            consistency="QUORUM",
            idempotent=True,
        )
    return Applied(ks, version, max(version, plan.latest), changed)


async def current_version(session: CqlSession, keyspace: str) -> int:
    """The newest applied version of `keyspace` (0: none)."""
    return await _version(session, await _SystemSchema.detect(session), keyspace)


async def keyspace_replication(session: CqlSession, keyspace: str) -> dict[str, int] | None:
    """{dc: rf} of a NetworkTopologyStrategy keyspace ({} for another strategy; None: no such keyspace)."""
    return await (await _SystemSchema.detect(session)).replication(keyspace)


async def _version(session: CqlSession, system: _SystemSchema, ks: str) -> int:
    if not await system.has_table(ks, "schema_version"):
        return 0
    result = await session.execute(
        f"SELECT version FROM {ks}.schema_version WHERE scope = 'schema' LIMIT 1", consistency="QUORUM"
    )
    return int(result.rows[0]["version"]) if result.rows else 0


async def _ddl(session: CqlSession, statement: str, limit: asyncio.Semaphore) -> None:
    """One DDL, then schema agreement. Every statement here is idempotent (IF NOT EXISTS, or guarded by
    a schema check), so a timed-out one (outcome unknown: seen on a loaded machine, the driver's connection
    declared defunct mid-DDL) is sent again, but only after the cluster agrees on a schema: re-sending a
    CREATE TABLE while the first one is still spreading could make a second table id on another
    coordinator (Cassandra 2.1's "Column family ID mismatch")."""
    for attempt in range(1, _DDL_ATTEMPTS + 1):
        try:
            async with limit:
                await session.execute(statement, timeout_s=_DDL_TIMEOUT_S)
            break
        except DeadlineExceeded as exc:
            if attempt == _DDL_ATTEMPTS:
                raise
            log.warning(
                "DDL timed out (attempt %d), sending it again after schema agreement: %s", attempt, exc
            )
            await wait_for_schema_agreement(session)
    await wait_for_schema_agreement(session)


async def wait_for_schema_agreement(session: CqlSession, timeout_s: float = _AGREEMENT_TIMEOUT_S) -> None:
    """Until every node (as gossip reports it) holds one schema version; Unavailable naming the laggards."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        local = await session.execute("SELECT schema_version FROM system.local", consistency="ONE")
        peers = await session.execute("SELECT peer, schema_version FROM system.peers", consistency="ONE")
        mine = local.rows[0]["schema_version"] if local.rows else None
        behind = sorted(str(row["peer"]) for row in peers.rows if row["schema_version"] != mine)
        if mine is not None and not behind:
            return
        if loop.time() >= deadline:
            raise Unavailable(
                f"cassandra dc {session.local_dc}: no schema agreement after {timeout_s}s; "
                f"nodes {behind} differ (down or partitioned?)"
            )
        await asyncio.sleep(0.2)


class _SystemSchema:
    """Cassandra 2.1 keeps schema in system.schema_*; 3.0+ in system_schema.*: read either."""

    def __init__(self, session: CqlSession, modern: bool) -> None:
        self._session = session
        self._modern = modern

    @classmethod
    async def detect(cls, session: CqlSession) -> _SystemSchema:
        try:
            await session.execute(
                "SELECT keyspace_name FROM system_schema.keyspaces LIMIT 1", consistency="ONE"
            )
        except StoreError:
            return cls(session, modern=False)
        return cls(session, modern=True)

    async def replication(self, ks: str) -> dict[str, int] | None:
        """{dc: rf} of a keyspace; {} for a non-NetworkTopologyStrategy one; None if it does not exist."""
        if self._modern:
            rows = await self._rows(
                "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", ks
            )
            options: dict[str, Any] = dict(rows[0]["replication"]) if rows else {}
            strategy = str(options.pop("class", ""))
        else:
            rows = await self._rows(
                "SELECT strategy_class, strategy_options FROM system.schema_keyspaces "
                "WHERE keyspace_name = %s",
                ks,
            )
            options = json.loads(rows[0]["strategy_options"] or "{}") if rows else {}
            strategy = str(rows[0]["strategy_class"]) if rows else ""
        if not rows:
            return None
        return {dc: int(rf) for dc, rf in options.items()} if strategy.endswith(_NTS) else {}

    async def has_table(self, ks: str, table: str) -> bool:
        if self._modern:
            query = "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s"
        else:
            query = (
                "SELECT columnfamily_name FROM system.schema_columnfamilies "
                "WHERE keyspace_name = %s AND columnfamily_name = %s"
            )
        return bool(await self._rows(query, ks, table))

    async def has_column(self, ks: str, table: str, column: str) -> bool:
        if self._modern:
            query = (
                "SELECT column_name FROM system_schema.columns "
                "WHERE keyspace_name = %s AND table_name = %s AND column_name = %s"
            )
        else:
            query = (
                "SELECT column_name FROM system.schema_columns "
                "WHERE keyspace_name = %s AND columnfamily_name = %s AND column_name = %s"
            )
        return bool(await self._rows(query, ks, table, column))

    async def _rows(self, query: str, *params: str) -> list[dict[str, Any]]:
        return (await self._session.execute(query, params, consistency="ONE")).rows
