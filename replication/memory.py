"""The in-memory twin of the Cassandra store, for unit tests of logic that uses the store.

It keeps the semantics callers can observe (tests/contract runs one suite against both): rows win by
write timestamp (`updated_at_ms` / `at_ms`), TTLs expire by an injected clock, listing pages with the
same keyset core and tokens (replication.paging), and a claim is "insert if absent". It has no DCs:
it behaves like one region with no partition.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from fedlib.errors import NotFound
from fedlib.ids import parse_instance_id
from fedlib.names import check_id, check_tenant
from replication import claims, paging
from replication.listing_gens import Generations, drop_ts_us, footprint_ts_us
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
    check_ms,
    check_ttl,
)
from replication.schema import REPORT_TTL_S

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ManualClock:
    """Epoch milliseconds that move only when a test says so."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@dataclass(frozen=True)
class _Version(Generic[V]):
    ts_us: int
    value: V | None  # None: a tombstone, kept so an older write arriving late stays shadowed
    expires_ms: int | None


class _Table(Generic[K, V]):
    """Cassandra's last-write-wins by timestamp; a delete wins a tie, as a tombstone does."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._rows: dict[K, _Version[V]] = {}
        self._last_us = 0

    def now_us(self) -> int:
        # Like the driver's client-side timestamps: from the clock, but strictly increasing.
        self._last_us = max(self._clock() * 1000, self._last_us + 1)
        return self._last_us

    def write(self, key: K, value: V | None, ts_us: int, ttl_s: int | None = None) -> None:
        old = self._rows.get(key)
        if old is not None and (old.ts_us > ts_us or (old.ts_us == ts_us and old.value is None)):
            return
        expires = None if ttl_s is None else self._clock() + ttl_s * 1000
        self._rows[key] = _Version(ts_us, value, expires)

    def get(self, key: K) -> V | None:
        row = self._rows.get(key)
        if row is None or (row.expires_ms is not None and row.expires_ms <= self._clock()):
            return None
        return row.value

    def live(self) -> Iterator[tuple[K, V]]:
        for key in list(self._rows):
            value = self.get(key)
            if value is not None:
                yield key, value


class MemoryDirectory:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._sites: _Table[str, Site] = _Table(clock)
        self._cells: _Table[str, Cell] = _Table(clock)

    async def put_site(self, site: Site) -> None:
        self._sites.write(site.site_id, site, site.updated_at_ms * 1000)

    async def get_site(self, site_id: str) -> Site:
        return _found(self._sites.get(check_id(site_id, "site_id")), f"site {site_id}")

    async def list_sites(self) -> list[Site]:
        return [site for _, site in sorted(self._sites.live())]

    async def delete_site(self, site_id: str, *, at_ms: int) -> None:
        self._sites.write(check_id(site_id, "site_id"), None, check_ms(at_ms, "at_ms") * 1000)

    async def put_cell(self, cell: Cell) -> None:
        self._cells.write(cell.cell_id, cell, cell.updated_at_ms * 1000)

    async def get_cell(self, cell_id: str) -> Cell:
        return _found(self._cells.get(check_id(cell_id, "cell_id")), f"cell {cell_id}")

    async def list_cells(self) -> list[Cell]:
        return [cell for _, cell in sorted(self._cells.live())]

    async def delete_cell(self, cell_id: str, *, at_ms: int) -> None:
        self._cells.write(check_id(cell_id, "cell_id"), None, check_ms(at_ms, "at_ms") * 1000)


class MemoryRouters:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._members: _Table[str, RouterMember] = _Table(clock)
        self._reports: _Table[str, RouterReport] = _Table(clock)

    async def heartbeat(self, member: RouterMember, *, ttl_s: int) -> None:
        self._members.write(member.router_id, member, self._members.now_us(), check_ttl(ttl_s))

    async def live_members(self) -> list[RouterMember]:
        return [member for _, member in sorted(self._members.live())]

    async def leave(self, router_id: str) -> None:
        self._members.write(check_id(router_id, "router_id"), None, self._members.now_us())

    async def publish_report(self, report: RouterReport) -> None:
        self._reports.write(report.router_id, report, report.reported_at_ms * 1000, REPORT_TTL_S)

    async def reports(self) -> list[RouterReport]:
        return [report for _, report in sorted(self._reports.live())]


class MemoryCapacity:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._rows: _Table[str, CapacitySummary] = _Table(clock)

    async def publish(self, summary: CapacitySummary) -> None:
        self._rows.write(summary.cell_id, summary, summary.updated_at_ms * 1000)

    async def get(self, cell_id: str) -> CapacitySummary:
        return _found(self._rows.get(check_id(cell_id, "cell_id")), f"capacity of cell {cell_id}")

    async def all(self) -> list[CapacitySummary]:
        return [row for _, row in sorted(self._rows.live())]

    async def remove(self, cell_id: str, *, at_ms: int) -> None:
        self._rows.write(check_id(cell_id, "cell_id"), None, check_ms(at_ms, "at_ms") * 1000)


class MemoryIndex:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._rows: _Table[str, IndexEntry] = _Table(clock)

    async def put(self, entry: IndexEntry) -> None:
        self._rows.write(entry.instance_id, entry, entry.updated_at_ms * 1000)

    async def get(self, instance_id: str) -> IndexEntry:
        parse_instance_id(instance_id)
        return _found(self._rows.get(instance_id), f"instance {instance_id}")

    async def delete(self, instance_id: str, *, at_ms: int) -> None:
        parse_instance_id(instance_id)
        self._rows.write(instance_id, None, check_ms(at_ms, "at_ms") * 1000)


# Listing rows are keyed as in Cassandra: (tenant, owner cell, generation, sort key..., instance id).
_ListKey = tuple[str, str, int, int | str, str]
_Partition = tuple[str, str, int]


class MemoryListing:
    """The generation layout of replication.listing_gens: the cell's generations, the tenant footprint,
    rows per (tenant, cell, generation) and whole-partition drops, as the Cassandra adapter keeps them."""

    def __init__(
        self,
        clock: Callable[[], int],
        token_key: bytes | None = None,
        scan_budget: int = paging.DEFAULT_SCAN_BUDGET,
    ) -> None:
        self._by_created: _Table[_ListKey, ListingEntry] = _Table(clock)
        self._by_name: _Table[_ListKey, ListingEntry] = _Table(clock)
        self._footprint: _Table[tuple[str, str], int] = _Table(clock)
        self._gens: dict[str, Generations] = {}
        self._dropped: dict[_Partition, int] = {}  # partition -> its tombstone's timestamp
        self._token_key = token_key or paging.new_token_key()  # a twin's own unless one is shared
        self._scan_budget = scan_budget

    def with_scan_budget(self, scan_budget: int) -> MemoryListing:
        """The same rows, read with another scan budget per page."""
        view = copy.copy(self)
        view._scan_budget = scan_budget
        return view

    def tombstones_of(self, tenant: str) -> int:
        """Row tombstones still held in the partitions readers read now (the footprint's generations)."""
        read = {(tenant, cell, gen) for (t, cell), gen in self._footprint.live() if t == tenant}
        return sum(
            1
            for table in (self._by_created, self._by_name)
            for k, v in table._rows.items()
            if k[:3] in read and v.value is None
        )

    def partitions_holding(self, tenant: str) -> int:
        """Partitions still holding rows or row tombstones of `tenant` (what readers could wade through)."""
        return len(
            {k[:3] for table in (self._by_created, self._by_name) for k in table._rows if k[0] == tenant}
        )

    async def put(self, entry: ListingEntry, *, previous_name: str | None = None) -> None:
        e, ts = entry, entry.updated_at_ms * 1000
        gens = self._gens.get(e.owner_cell, Generations())
        self._footprint.write((e.tenant, e.owner_cell), gens.current, footprint_ts_us(gens.current))
        for gen in gens.written:
            self._write(
                self._by_created, (e.tenant, e.owner_cell, gen, e.created_at_ms, e.instance_id), e, ts
            )
            if previous_name is not None and previous_name != e.name:
                self._write(
                    self._by_name, (e.tenant, e.owner_cell, gen, previous_name, e.instance_id), None, ts
                )
            self._write(self._by_name, (e.tenant, e.owner_cell, gen, e.name, e.instance_id), e, ts)

    async def delete(self, entry: ListingEntry, *, at_ms: int) -> None:
        e, ts = entry, check_ms(at_ms, "at_ms") * 1000
        for gen in self._gens.get(e.owner_cell, Generations()).written:
            self._write(
                self._by_created, (e.tenant, e.owner_cell, gen, e.created_at_ms, e.instance_id), None, ts
            )
            self._write(self._by_name, (e.tenant, e.owner_cell, gen, e.name, e.instance_id), None, ts)

    async def open_generation(self, cell_id: str, *, at_ms: int) -> None:
        check_id(cell_id, "cell_id")
        self._gens[cell_id] = self._gens.get(cell_id, Generations()).open(check_ms(at_ms, "at_ms"))

    async def commit_generation(
        self, cell_id: str, tenants: Collection[str], *, at_ms: int, gone: Collection[str] = ()
    ) -> None:
        gens, drop = self._gens.get(check_id(cell_id, "cell_id"), Generations()).commit()
        if gens.retired is None:  # nothing was open
            return
        for tenant in tenants:
            self._footprint.write(
                (check_tenant(tenant), cell_id), gens.current, footprint_ts_us(gens.current)
            )
        for tenant in gone:
            self._footprint.write((check_tenant(tenant), cell_id), None, footprint_ts_us(gens.current) - 1)
        self._gens[cell_id] = gens
        if drop is not None:
            for tenant in {*tenants, *gone}:
                self._drop((tenant, cell_id, drop), drop_ts_us(check_ms(at_ms, "at_ms")))

    def _drop(self, partition: _Partition, ts: int) -> None:
        """A partition tombstone: everything older in it is gone at once (no row tombstones remain)."""
        self._dropped[partition] = ts
        for table in (self._by_created, self._by_name):
            for key in [k for k, v in table._rows.items() if k[:3] == partition and v.ts_us <= ts]:
                del table._rows[key]

    def _write(
        self, table: _Table[_ListKey, ListingEntry], key: _ListKey, value: ListingEntry | None, ts: int
    ) -> None:
        if ts > self._dropped.get(key[:3], -1):  # a dropped partition shadows everything older
            table.write(key, value, ts)

    async def list(self, query: paging.ListQuery) -> ListPage:
        plan = paging.plan(query, self._token_key)
        table = self._by_name if query.order.by_name else self._by_created
        tenant = plan.query.tenant
        partitions = sorted((tenant, cell, gen) for (t, cell), gen in self._footprint.live() if t == tenant)

        async def read_round(after: paging.Position | None, limit: int) -> Sequence[Sequence[ListingEntry]]:
            return [self._read_partition(plan, table, p, after, limit) for p in partitions]

        return await paging.run(plan, read_round, self._scan_budget)

    def _read_partition(
        self,
        plan: paging.ListPlan,
        table: _Table[_ListKey, ListingEntry],
        partition: _Partition,
        after: paging.Position | None,
        limit: int,
    ) -> Sequence[ListingEntry]:
        rows = [row for key, row in table.live() if key[:3] == partition]
        rows.sort(key=lambda r: paging.sort_key(r, plan.order), reverse=plan.order.descending)
        if after is not None:
            rows = [r for r in rows if plan.before(after, paging.sort_key(r, plan.order))]
        return rows[:limit]


class MemoryIdempotency:
    def __init__(self, clock: Callable[[], int], region: str) -> None:
        self._claims: _Table[tuple[str, str, str], IdempotencyRecord] = _Table(clock)
        self._region = check_id(region, "region")

    def for_region(self, region: str) -> MemoryIdempotency:
        """The same claims as seen by a router of another region (the twin has no replication lag)."""
        view = copy.copy(self)
        view._region = check_id(region, "region")
        return view

    async def claim(
        self, record: IdempotencyRecord, *, ttl_s: int, peer_regions: Sequence[str] = ()
    ) -> ClaimOutcome:
        peers = claims.check_claim(record, self._region, ttl_s, peer_regions)
        earlier = await self.lookup(record.tenant, record.request_id, [*peers, self._region]) if peers else []
        if earlier:
            return claims.answer_existing(record, earlier[0])
        key = (record.tenant, record.request_id, record.region)
        existing = self._claims.get(key)
        if existing is not None:
            return claims.answer_existing(record, existing)
        self._claims.write(key, record, self._claims.now_us(), ttl_s)
        return ClaimOutcome(record, won=True)

    async def reassign(self, record: IdempotencyRecord, instance_id: str, *, ttl_s: int) -> IdempotencyRecord:
        claims.check_reassign(record, self._region, instance_id, ttl_s)
        key = (record.tenant, record.request_id, record.region)
        current = self._claims.get(key)
        if current is None:
            raise NotFound(f"claim of request_id {record.request_id!r} has expired", field="request_id")
        if current.instance_id != record.instance_id:
            return current
        moved = replace(current, instance_id=instance_id)
        self._claims.write(key, moved, self._claims.now_us(), ttl_s)
        return moved

    async def reassert(self, record: IdempotencyRecord, *, written_at_ms: int, ttl_s: int) -> None:
        check_ms(written_at_ms, "written_at_ms")
        key = (record.tenant, record.request_id, record.region)
        self._claims.write(key, record, written_at_ms * 1000, check_ttl(ttl_s))

    async def lookup(self, tenant: str, request_id: str, regions: Sequence[str]) -> list[IdempotencyRecord]:
        check_tenant(tenant)
        found = (self._claims.get((tenant, request_id, r)) for r in claims.check_lookup(request_id, regions))
        return claims.oldest_first(r for r in found if r is not None)


class MemoryRevocations:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._rows: dict[tuple[str, str], Revocation] = {}

    async def revoke(self, revocation: Revocation) -> None:
        self._rows[(revocation.kind.value, revocation.key)] = revocation

    async def all(self) -> list[Revocation]:
        now = self._clock()
        return [r for _, r in sorted(self._rows.items()) if r.until_ms > now]  # as the rows' TTL would


class MemorySecrets:
    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        return self._values.get(name)

    async def get_or_create(self, name: str, make: Callable[[], bytes]) -> bytes:
        return self._values.setdefault(name, make())


class MemoryStore:
    """Every aggregate over one clock; `region` is the local region claims are made in."""

    def __init__(
        self,
        clock: Callable[[], int],
        *,
        region: str,
        token_key: bytes | None = None,
        scan_budget: int = paging.DEFAULT_SCAN_BUDGET,
    ) -> None:
        self.directory = MemoryDirectory(clock)
        self.routers = MemoryRouters(clock)
        self.capacity = MemoryCapacity(clock)
        self.index = MemoryIndex(clock)
        self.listing = MemoryListing(clock, token_key, scan_budget)
        self.idempotency = MemoryIdempotency(clock, region)
        self.revocations = MemoryRevocations(clock)


T = TypeVar("T")


def _found(value: T | None, what: str) -> T:
    if value is None:
        raise NotFound(f"{what} not found")
    return value
