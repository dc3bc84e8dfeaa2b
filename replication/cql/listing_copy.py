"""Schema version 3's data step: copy the sharded listing (versions 1-2) into each owner cell's first
generation (replication.listing_gens), with the tenant footprint that makes readers find it.

A full scan of the old table, page by page, off the request path (QUORUM, like the migration's own
bookkeeping). Idempotent: every row keeps its own write timestamp (the owner's updated_at), so running it
twice, or after a cell already re-asserted a row, changes nothing. Rows a cell deleted meanwhile stay
deleted: the delete's timestamp is newer than the copied row's."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from replication.cql.session import CqlSession
from replication.listing_gens import FIRST_GENERATION, footprint_ts_us

log = logging.getLogger(__name__)

_PAGE = 500
_IN_FLIGHT = 16
_VALUES = "owner_cell, site_id, flavor, status, updated_at"


async def copy_listing_to_generations(session: CqlSession, ks: str) -> int:
    """Returns how many rows it copied."""
    by_created = await session.prepare(
        f"INSERT INTO {ks}.listing_gen_by_created (tenant, cell_id, gen, created_at, instance_id, name, "
        f"{_VALUES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
    )
    by_name = await session.prepare(
        f"INSERT INTO {ks}.listing_gen_by_name (tenant, cell_id, gen, name, instance_id, created_at, "
        f"{_VALUES}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
    )
    footprint = await session.prepare(
        f"INSERT INTO {ks}.listing_footprint (tenant, cell_id, gen) VALUES (?, ?, ?) USING TIMESTAMP ?"
    )
    limit = asyncio.Semaphore(_IN_FLIGHT)
    seen: set[tuple[str, str]] = set()
    copied, state = 0, None

    async def write(statement: Any, params: tuple[Any, ...]) -> None:
        async with limit:
            await session.execute(statement, params, consistency="QUORUM", idempotent=True)

    while True:
        page = await session.execute(
            f"SELECT tenant, created_at, instance_id, name, {_VALUES} FROM {ks}.listing_by_created",
            consistency="QUORUM", fetch_size=_PAGE, paging_state=state,
        )  # fmt: skip
        writes = []
        for r in page.rows:
            tenant, cell, ts = r["tenant"], r["owner_cell"], r["updated_at"] * 1000
            values = (r["owner_cell"], r["site_id"], r["flavor"], r["status"], r["updated_at"], ts)
            key = (tenant, cell, FIRST_GENERATION)
            writes.append(write(by_created, (*key, r["created_at"], r["instance_id"], r["name"], *values)))
            writes.append(write(by_name, (*key, r["name"], r["instance_id"], r["created_at"], *values)))
            if (tenant, cell) not in seen:
                seen.add((tenant, cell))
                writes.append(write(footprint, (*key, footprint_ts_us(FIRST_GENERATION))))
        await asyncio.gather(*writes)
        copied += len(page.rows)
        state = page.paging_state
        if state is None:
            log.info("keyspace %s: copied %d listing rows into generations", ks, copied)
            return copied
