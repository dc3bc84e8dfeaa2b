"""The tenant listing on Cassandra: two denormalised tables read by keyset (replication.paging).

listing_by_created ((tenant, shard), created_at, instance_id) and listing_by_name ((tenant, shard), name,
instance_id): both orders are clustering orders, so a page is SHARDS single-partition slices
`(key, instance_id) > (?, ?) LIMIT ?` read concurrently, whatever the page number. Bounds: schema.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cassandra.query import BatchStatement, BatchType

from replication import paging
from replication.cql._base import CqlTable, ts_us
from replication.cql.session import CqlSession
from replication.model import ListingEntry, ListPage, check_ms

_VALUES = "owner_cell, site_id, flavor, status, updated_at"
_COLUMNS = f"tenant, created_at, instance_id, name, {_VALUES}"
_Statement = tuple[str, tuple[Any, ...]]


class CqlListing(CqlTable):
    def __init__(self, session: CqlSession, keyspace: str, token_key: bytes, scan_budget: int) -> None:
        super().__init__(session, keyspace)
        self._token_key = token_key
        self._scan_budget = scan_budget

    def with_scan_budget(self, scan_budget: int) -> CqlListing:
        """The same rows, read with another scan budget per page."""
        listing = CqlListing(self.session, self.ks, self._token_key, scan_budget)
        listing.levels = self.levels
        return listing

    async def put(self, entry: ListingEntry, *, previous_name: str | None = None) -> None:
        e, shard, ts = entry, paging.shard_of(entry.instance_id), ts_us(entry.updated_at_ms)
        values = (e.owner_cell, e.site_id, e.flavor, e.status.value, e.updated_at_ms)
        statements: list[_Statement] = [
            (
                f"INSERT INTO {self.ks}.listing_by_created (tenant, shard, created_at, instance_id, name, "
                f"{_VALUES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
                (e.tenant, shard, e.created_at_ms, e.instance_id, e.name, *values, ts),
            ),
            (
                f"INSERT INTO {self.ks}.listing_by_name (tenant, shard, name, instance_id, created_at, "
                f"{_VALUES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
                (e.tenant, shard, e.name, e.instance_id, e.created_at_ms, *values, ts),
            ),
        ]
        if previous_name is not None and previous_name != e.name:
            statements.append(self._delete_by_name(e, previous_name, ts))
        await self._batch(statements)

    async def delete(self, entry: ListingEntry, *, at_ms: int) -> None:
        e, ts = entry, ts_us(check_ms(at_ms, "at_ms"))
        created = (
            f"DELETE FROM {self.ks}.listing_by_created USING TIMESTAMP ? "
            "WHERE tenant = ? AND shard = ? AND created_at = ? AND instance_id = ?",
            (ts, e.tenant, paging.shard_of(e.instance_id), e.created_at_ms, e.instance_id),
        )
        await self._batch([created, self._delete_by_name(e, e.name, ts)])

    async def list(self, query: paging.ListQuery) -> ListPage:
        plan = paging.plan(query, self._token_key)

        async def read_round(after: paging.Position | None, limit: int) -> Sequence[Sequence[ListingEntry]]:
            shards = (self._read_shard(plan, shard, after, limit) for shard in range(paging.SHARDS))
            return await asyncio.gather(*shards)

        return await paging.run(plan, read_round, self._scan_budget)

    async def _read_shard(
        self, plan: paging.ListPlan, shard: int, after: paging.Position | None, limit: int
    ) -> Sequence[ListingEntry]:
        table, key = (
            ("listing_by_name", "name") if plan.order.by_name else ("listing_by_created", "created_at")
        )
        where = "tenant = ? AND shard = ?"
        params: tuple[Any, ...] = (plan.query.tenant, shard)
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

    def _delete_by_name(self, e: ListingEntry, name: str, ts: int) -> _Statement:
        return (
            f"DELETE FROM {self.ks}.listing_by_name USING TIMESTAMP ? "
            "WHERE tenant = ? AND shard = ? AND name = ? AND instance_id = ?",
            (ts, e.tenant, paging.shard_of(e.instance_id), name, e.instance_id),
        )

    async def _batch(self, statements: Sequence[_Statement]) -> None:
        # Logged: the two orders of one instance never disagree for longer than the batchlog replay, even
        # if this process dies between the writes. Every statement carries its own timestamp.
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
    )
