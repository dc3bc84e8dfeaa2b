"""The store's interfaces: one small Protocol per aggregate of the global keyspace.

Two implementations hold to them and one contract suite (tests/contract) checks that they agree:
`replication.cql.store` (Cassandra) and `replication.memory` (the in-memory twin for unit tests).

Rules every implementation keeps:
- Request-path reads and writes are local to the caller's DC (LOCAL_QUORUM); nothing here waits on the WAN.
- Rows that carry `updated_at_ms` are written with it as their timestamp, and deletes take `at_ms`: the
  newest report by the owner's clock wins whatever order writes arrive in. Equal timestamps are not
  ordered (a delete wins a tie), so owners must advance updated_at on every change.
- Listing and reads return values (model.py); misses raise fedlib.errors.NotFound.

Idempotency (IdempotencyLedger) -- the consistency choice and what it does under a WAN partition:

A claim is keyed (tenant, request_id, region), where `region` is the claiming router's own region, and is
made with `INSERT ... IF NOT EXISTS` at LOCAL_SERIAL (commit at LOCAL_QUORUM) in that region's DC. The
region is in the partition key, so Paxos for a key only ever runs in one DC: two DCs never contend for a
partition (DESIGN principle 3), and a claim never waits on the WAN. The LWT itself answers "already
claimed" with the earlier record, so there is no read-before-write inside a region.

A retry at a router in another region ("any router", compute.proto) is caught by a LOCAL_QUORUM read of
the same (tenant, request_id) under the tenant's other regions (`peer_regions`) before the local claim:
claims replicate to every DC in milliseconds (p99 ~30 ms measured), far below any client retry interval.

Under a WAN partition the two regions cannot see each other's claims, and we choose availability: a
client that fails over to a router in a partitioned-off region gets a second, independent claim (and so
a second instance). We do not make claims SERIAL (cross-DC Paxos) because then every create would pay
the WAN and fail during any partition. What keying by region buys over one shared (tenant, request_id)
key: with a shared key LOCAL_SERIAL in two DCs would let both "win" and, on healing, one claim would
silently overwrite the other (last write wins), orphaning an instance from its request id. Keyed by
region, both claims survive replication; `lookup` returns both, so the duplicate is visible to
reconciliation, and `claim` answers every later retry with the earliest one (by created_at, region),
the same answer in every region once the partition heals.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from replication.model import (
    CapacitySummary,
    Cell,
    ClaimOutcome,
    IdempotencyRecord,
    IndexEntry,
    ListingEntry,
    ListPage,
    Revocation,
    RouterMember,
    RouterReport,
    Site,
)
from replication.paging import ListQuery


class SiteDirectory(Protocol):
    """Sites and their cells: small, slow-changing, read whole by every router."""

    async def put_site(self, site: Site) -> None: ...
    async def get_site(self, site_id: str) -> Site: ...
    async def list_sites(self) -> list[Site]: ...  # sorted by site_id
    async def delete_site(self, site_id: str, *, at_ms: int) -> None: ...
    async def put_cell(self, cell: Cell) -> None: ...
    async def get_cell(self, cell_id: str) -> Cell: ...
    async def list_cells(self) -> list[Cell]: ...  # sorted by cell_id
    async def delete_cell(self, cell_id: str, *, at_ms: int) -> None: ...


class RouterMembership(Protocol):
    """Peer routers announce themselves with heartbeats that expire on their own (TTL), and publish a
    report (their traffic, their RTTs) with each one. A report outlives the heartbeat (REPORT_TTL_S of
    replication.schema) and is kept through `leave`: the view shows a gone router's last report, aged.
    Reports win by `reported_at_ms`, so a late, older one never replaces a newer one."""

    async def heartbeat(self, member: RouterMember, *, ttl_s: int) -> None: ...
    async def live_members(self) -> list[RouterMember]: ...  # sorted by router_id
    async def leave(self, router_id: str) -> None: ...
    async def publish_report(self, report: RouterReport) -> None: ...
    async def reports(self) -> list[RouterReport]: ...  # sorted by router_id


class CapacityBoard(Protocol):
    """One summary row per cell, written only by that cell."""

    async def publish(self, summary: CapacitySummary) -> None: ...
    async def get(self, cell_id: str) -> CapacitySummary: ...
    async def all(self) -> list[CapacitySummary]: ...  # sorted by cell_id
    async def remove(self, cell_id: str, *, at_ms: int) -> None: ...


class InstanceIndex(Protocol):
    """instance id -> owner cell and coarse state. The owning cell writes; any router reads."""

    async def put(self, entry: IndexEntry) -> None: ...
    async def get(self, instance_id: str) -> IndexEntry: ...
    async def delete(self, instance_id: str, *, at_ms: int) -> None: ...


class TenantListing(Protocol):
    """A tenant's instances, sorted by creation time or name, filtered, keyset-paged (replication.paging).
    Rows live in generations of their owning cell (replication.listing_gens): the cell's re-assert sweep
    opens one, puts every live instance again, and commits it; the generation before is dropped whole."""

    # `previous_name`: the name the owner last published, when it changed (the row keyed by the old name
    # is removed without reading it back first).
    async def put(self, entry: ListingEntry, *, previous_name: str | None = None) -> None: ...
    async def delete(self, entry: ListingEntry, *, at_ms: int) -> None: ...
    async def list(self, query: ListQuery) -> ListPage: ...

    # Only the owning cell calls these. `tenants`: those it holds live instances of (their footprint now
    # names the new generation); `gone`: those it holds none of any more (their footprint row goes).
    async def open_generation(self, cell_id: str, *, at_ms: int) -> None: ...
    async def commit_generation(
        self, cell_id: str, tenants: Collection[str], *, at_ms: int, gone: Collection[str] = ()
    ) -> None: ...


class IdempotencyLedger(Protocol):
    """(tenant, client request id) -> instance id; see the module docstring for consistency."""

    async def claim(
        self, record: IdempotencyRecord, *, ttl_s: int, peer_regions: Sequence[str] = ()
    ) -> ClaimOutcome: ...

    # Moves this region's claim from `record.instance_id` to `instance_id` (a build spilled to another
    # cell gets an id naming that cell), if it still names the former: LWT at LOCAL_SERIAL, so two
    # attempts of one request never both move it. Returns the claim as it now stands (ours, or what the
    # other attempt put there); NotFound once the claim has expired. `ttl_s`: what is left of its life.
    async def reassign(
        self, record: IdempotencyRecord, instance_id: str, *, ttl_s: int
    ) -> IdempotencyRecord: ...

    # Writes a claim again as it stood at `written_at_ms` (a plain write at that timestamp, never an LWT):
    # the owning cell re-asserts its claim so a DC that missed the first write (hints lost during a long
    # cut) learns it. At that timestamp it never overrides a newer state of the claim. Any region's row.
    async def reassert(self, record: IdempotencyRecord, *, written_at_ms: int, ttl_s: int) -> None: ...

    # Every live claim of (tenant, request_id) in `regions`, oldest first.
    async def lookup(
        self, tenant: str, request_id: str, regions: Sequence[str]
    ) -> list[IdempotencyRecord]: ...


class RevocationList(Protocol):
    """Revoked tokens and tenants, one small partition every router reads whole each heartbeat. A row
    lives until no token it covers can be valid (its `until_ms`), then expires on its own."""

    async def revoke(self, revocation: Revocation) -> None: ...
    async def all(self) -> list[Revocation]: ...  # the live ones, sorted by (kind, key)


class FederationSecrets(Protocol):
    """Per-deployment secrets every router must share (the listing's page-token key): made once at
    schema apply, by whichever applier wins (an LWT), read by routers at start."""

    async def get_or_create(self, name: str, make: Callable[[], bytes]) -> bytes: ...


class Store(Protocol):
    """Everything one process uses, bound to its keyspace(s) and local region."""

    @property
    def directory(self) -> SiteDirectory: ...
    @property
    def routers(self) -> RouterMembership: ...
    @property
    def capacity(self) -> CapacityBoard: ...
    @property
    def index(self) -> InstanceIndex: ...
    @property
    def listing(self) -> TenantListing: ...
    @property
    def idempotency(self) -> IdempotencyLedger: ...
    @property
    def revocations(self) -> RevocationList: ...
