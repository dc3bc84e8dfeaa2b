"""The harness the contract suite runs against: the same handles over either store implementation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from replication.memory import ManualClock, MemorySecrets, MemoryStore
from replication.store import FederationSecrets, IdempotencyLedger, Store, TenantListing

LOCAL, PEER = "eu-west", "us-east"


@dataclass
class Harness:
    kind: str
    store: Store
    now_ms: Callable[[], int]
    advance: Callable[[float], Awaitable[None]]  # let time pass (a fake clock, or really sleep)
    ledger_in: Callable[[str], IdempotencyLedger]  # the claims as a router of that region sees them
    listing_with_budget: Callable[[int], TenantListing]
    unique: str  # tests share a Cassandra keyspace per module: name tenants, sites and cells with this
    secrets: FederationSecrets


def memory_harness(unique: str) -> Harness:
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
        secrets=MemorySecrets(),
    )


def cql_harness(sessions: dict[str, Any], keyspace: str, unique: str) -> Harness:
    from replication.cql.federation_rows import CqlSecrets
    from replication.cql.idempotency import CqlIdempotency
    from replication.cql.store import CqlStore

    store = CqlStore(sessions[LOCAL], keyspace=keyspace, region=LOCAL)

    def ledger_in(region: str) -> IdempotencyLedger:
        # A claim's LWT must run in its own region's DC: use that DC's session.
        return CqlIdempotency(sessions[region], keyspace, region)

    return Harness(
        kind="cassandra",
        store=store,
        now_ms=lambda: int(time.time() * 1000),
        advance=asyncio.sleep,
        ledger_in=ledger_in,
        listing_with_budget=store.listing.with_scan_budget,
        unique=unique,
        secrets=CqlSecrets(sessions[LOCAL], keyspace),
    )
