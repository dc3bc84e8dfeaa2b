"""The tenant listing on Cassandra, in generations of the owning cell (replication.listing_gens).

listing_gen_by_created ((tenant, cell_id, gen), created_at, instance_id) and listing_gen_by_name
((tenant, cell_id, gen), name, instance_id) hold the rows; listing_footprint ((tenant), cell_id) names each
cell's current generation; listing_generations (cell_id) is the cell's own bookkeeping. A page reads the
footprint (one partition of a row per cell) and then one slice per cell, `(key, instance_id) > (?, ?)
LIMIT ?`, concurrently, whatever the page number. Bounds: schema.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from cassandra.query import BatchStatement, BatchType

from fedlib.names import check_id, check_tenant
from replication import paging
from replication.cql._base import CqlTable, decode_addresses, encode_addresses, ts_us
from replication.cql.session import CqlSession
from replication.listing_gens import Generations, drop_ts_us, footprint_ts_us
from replication.model import ListingEntry, ListPage, check_ms

_VALUES = "owner_cell, site_id, flavor, status, updated_at, addresses"
_COLUMNS = f"tenant, created_at, instance_id, name, {_VALUES}"
_Statement = tuple[str, tuple[Any, ...]]
_Partition = tuple[str, int]  # (cell_id, gen) of one tenant


class CqlListing(CqlTable):
    def __init__(self, session: CqlSession, keyspace: str, token_key: bytes, scan_budget: int) -> None:
        super().__init__(session, keyspace)
        self._token_key = token_key
        self._scan_budget = scan_budget
        # The owning cell's generations, read once from listing_generations and kept current by
        # open/commit; a fresh adapter (a restarted cell) reads them again.
        self._gens: dict[str, Generations] = {}
        self._gens_lock = asyncio.Lock()
        self._footprinted: set[tuple[str, str, int]] = set()  # (tenant, cell, gen) asserted by this process

    def with_scan_budget(self, scan_budget: int) -> CqlListing:
        """The same rows, read with another scan budget per page (and its own generation cache)."""
        listing = CqlListing(self.session, self.ks, self._token_key, scan_budget)
        listing.levels = self.levels
        return listing

    async def put(self, entry: ListingEntry, *, previous_name: str | None = None) -> None:
        e, ts = entry, ts_us(entry.updated_at_ms)
        gens = await self._generations(e.owner_cell)
        values = (e.owner_cell, e.site_id, e.flavor, e.status.value, e.updated_at_ms, encode_addresses(e))
        statements: list[_Statement] = []
        for gen in gens.written:
            key = (e.tenant, e.owner_cell, gen)
            statements += [
                (
                    f"INSERT INTO {self.ks}.listing_gen_by_created (tenant, cell_id, gen, created_at, "
                    f"instance_id, name, {_VALUES}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
                    (*key, e.created_at_ms, e.instance_id, e.name, *values, ts),
                ),
                (
                    f"INSERT INTO {self.ks}.listing_gen_by_name (tenant, cell_id, gen, name, instance_id, "
                    f"created_at, {_VALUES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
                    (*key, e.name, e.instance_id, e.created_at_ms, *values, ts),
                ),
            ]
            if previous_name is not None and previous_name != e.name:
                statements.append(self._delete_by_name(e, gen, previous_name, ts))
        footprint = (e.tenant, e.owner_cell, gens.current)
        if footprint not in self._footprinted:
            statements.append(self._footprint(e.tenant, e.owner_cell, gens.current))
        await self._batch(statements)
        self._footprinted.add(footprint)
        now = self._gens.get(e.owner_cell)
        if now is not None and now.current != gens.current and now.current in gens.written:
            # A commit ran while this put was in flight: the rows went into the generation it made current,
            # but the footprint above named the old one (and a commit that removed the tenant wins over it).
            await self.run(*self._footprint(e.tenant, e.owner_cell, now.current))
            self._footprinted.add((e.tenant, e.owner_cell, now.current))

    async def delete(self, entry: ListingEntry, *, at_ms: int) -> None:
        e, ts = entry, ts_us(check_ms(at_ms, "at_ms"))
        statements: list[_Statement] = []
        for gen in (await self._generations(e.owner_cell)).written:
            statements.append(
                (
                    f"DELETE FROM {self.ks}.listing_gen_by_created USING TIMESTAMP ? WHERE tenant = ? "
                    "AND cell_id = ? AND gen = ? AND created_at = ? AND instance_id = ?",
                    (ts, e.tenant, e.owner_cell, gen, e.created_at_ms, e.instance_id),
                )
            )
            statements.append(self._delete_by_name(e, gen, e.name, ts))
        await self._batch(statements)

    async def open_generation(self, cell_id: str, *, at_ms: int) -> None:
        check_id(cell_id, "cell_id")
        check_ms(at_ms, "at_ms")
        async with self._gens_lock:
            gens = (await self._load(cell_id)).open(at_ms)
            await self._save(cell_id, gens, at_ms)
            self._gens[cell_id] = gens

    async def commit_generation(
        self, cell_id: str, tenants: Collection[str], *, at_ms: int, gone: Collection[str] = ()
    ) -> None:
        check_id(cell_id, "cell_id")
        check_ms(at_ms, "at_ms")
        for tenant in (*tenants, *gone):
            check_tenant(tenant)
        async with self._gens_lock:
            gens, drop = (await self._load(cell_id)).commit()
            if gens.retired is None:  # nothing was open
                return
            # Footprint first, then the bookkeeping, then the drop of the generation two back: a reader
            # (in any DC) finds either this generation or the one before, and both still exist.
            writes = [self._footprint(t, cell_id, gens.current) for t in tenants]
            writes += [
                (
                    f"DELETE FROM {self.ks}.listing_footprint USING TIMESTAMP ? "
                    "WHERE tenant = ? AND cell_id = ?",
                    (footprint_ts_us(gens.current) - 1, t, cell_id),
                )
                for t in gone
            ]
            await asyncio.gather(*(self.run(cql, params) for cql, params in writes))
            await self._save(cell_id, gens, at_ms)
            self._gens[cell_id] = gens
            self._footprinted.update((t, cell_id, gens.current) for t in tenants)
            if drop is not None:
                await asyncio.gather(*(self._drop(t, cell_id, drop, at_ms) for t in {*tenants, *gone}))

    async def list(self, query: paging.ListQuery) -> ListPage:
        plan = paging.plan(query, self._token_key)
        rows = await self.read(
            f"SELECT cell_id, gen FROM {self.ks}.listing_footprint WHERE tenant = ?", (plan.query.tenant,)
        )
        partitions: list[_Partition] = [(r["cell_id"], r["gen"]) for r in rows]

        async def read_round(after: paging.Position | None, limit: int) -> Sequence[Sequence[ListingEntry]]:
            reads = (self._read_partition(plan, p, after, limit) for p in partitions)
            return await asyncio.gather(*reads)

        return await paging.run(plan, read_round, self._scan_budget)

    async def _read_partition(
        self, plan: paging.ListPlan, partition: _Partition, after: paging.Position | None, limit: int
    ) -> Sequence[ListingEntry]:
        table, key = (
            ("listing_gen_by_name", "name")
            if plan.order.by_name
            else ("listing_gen_by_created", "created_at")
        )
        where = "tenant = ? AND cell_id = ? AND gen = ?"
        params: tuple[Any, ...] = (plan.query.tenant, *partition)
        if after is not None:
            where += f" AND ({key}, instance_id) {'<' if plan.order.descending else '>'} (?, ?)"
            params += after
        order = f" ORDER BY {key} DESC, instance_id DESC" if plan.order.descending else ""
        result = await self.run(
            f"SELECT {_COLUMNS} FROM {self.ks}.{table} WHERE {where}{order} LIMIT ?",
            (*params, limit),
            consistency=self.levels.read,
            fetch_size=limit + 1,
        )
        return [_entry(row) for row in result.rows]

    async def _generations(self, cell_id: str) -> Generations:
        gens = self._gens.get(cell_id)
        if gens is None:
            async with self._gens_lock:
                gens = await self._load(cell_id)
                self._gens[cell_id] = gens
        return gens

    async def _load(self, cell_id: str) -> Generations:
        cached = self._gens.get(cell_id)
        if cached is not None:
            return cached
        row = await self.read_one(
            f"SELECT current, opening, retired FROM {self.ks}.listing_generations WHERE cell_id = ?",
            (cell_id,),
        )
        if row is None:
            return Generations()
        return Generations(row["current"], row["opening"], row["retired"])

    async def _save(self, cell_id: str, gens: Generations, at_ms: int) -> None:
        await self.run(
            f"INSERT INTO {self.ks}.listing_generations (cell_id, current, opening, retired) "
            "VALUES (?, ?, ?, ?) USING TIMESTAMP ?",
            (cell_id, gens.current, gens.opening, gens.retired, ts_us(at_ms)),
        )

    async def _drop(self, tenant: str, cell_id: str, gen: int, at_ms: int) -> None:
        """One partition tombstone per table: the whole generation, rows and row tombstones, at once."""
        for table in ("listing_gen_by_created", "listing_gen_by_name"):
            await self.run(
                f"DELETE FROM {self.ks}.{table} USING TIMESTAMP ? "
                "WHERE tenant = ? AND cell_id = ? AND gen = ?",
                (drop_ts_us(at_ms), tenant, cell_id, gen),
            )

    def _footprint(self, tenant: str, cell_id: str, gen: int) -> _Statement:
        return (
            f"INSERT INTO {self.ks}.listing_footprint (tenant, cell_id, gen) "
            "VALUES (?, ?, ?) USING TIMESTAMP ?",
            (tenant, cell_id, gen, footprint_ts_us(gen)),
        )

    def _delete_by_name(self, e: ListingEntry, gen: int, name: str, ts: int) -> _Statement:
        return (
            f"DELETE FROM {self.ks}.listing_gen_by_name USING TIMESTAMP ? "
            "WHERE tenant = ? AND cell_id = ? AND gen = ? AND name = ? AND instance_id = ?",
            (ts, e.tenant, e.owner_cell, gen, name, e.instance_id),
        )

    async def _batch(self, statements: Sequence[_Statement]) -> None:
        # Logged: the orders and generations of one instance never disagree for longer than the batchlog
        # replay, even if this process dies between the writes. Every statement carries its own timestamp.
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        for cql, params in statements:
            batch.add(await self.session.prepare(cql), params)
        await self.session.execute(batch, consistency=self.levels.write, idempotent=True)


def _entry(r: dict[str, Any]) -> ListingEntry:
    return ListingEntry(
        tenant=r["tenant"],
        instance_id=r["instance_id"],
        name=r["name"],
        created_at_ms=r["created_at"],
        owner_cell=r["owner_cell"],
        site_id=r["site_id"],
        flavor=r["flavor"],
        status=r["status"],
        updated_at_ms=r["updated_at"],
        addresses=decode_addresses(r["addresses"]),
    )
