"""Idempotency claims on Cassandra: `INSERT ... IF NOT EXISTS` at LOCAL_SERIAL in the claimer's region.

The consistency choice and its behaviour under a WAN partition are argued in replication.store. In short:
the partition key is (tenant, request_id, region), so Paxos for a claim runs only in the claiming region's
DC and never contends with another DC; other regions' claims are found by a LOCAL_QUORUM read first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from fedlib.errors import DeadlineExceeded, NotFound
from fedlib.names import check_id, check_tenant
from replication import claims
from replication.cql._base import CqlTable, ts_us
from replication.cql.session import CqlSession
from replication.model import ClaimOutcome, IdempotencyRecord, check_ms, check_ttl

_COLUMNS = "tenant, request_id, region, instance_id, fingerprint, created_at"


class CqlIdempotency(CqlTable):
    def __init__(self, session: CqlSession, keyspace: str, region: str) -> None:
        super().__init__(session, keyspace)
        self._region = check_id(region, "region")

    async def claim(
        self, record: IdempotencyRecord, *, ttl_s: int, peer_regions: Sequence[str] = ()
    ) -> ClaimOutcome:
        peers = claims.check_claim(record, self._region, ttl_s, peer_regions)
        # With peers, our own region's row is read beside theirs: a retry must get the oldest claim of all
        # (replication.claims.oldest_first), which may be ours even when a peer's is visible too.
        earlier = await self.lookup(record.tenant, record.request_id, [*peers, self._region]) if peers else []
        if earlier:
            return claims.answer_existing(record, earlier[0])
        r = record
        try:
            result = await self.run(
                f"INSERT INTO {self.ks}.idempotency ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                "IF NOT EXISTS USING TTL ?",
                (r.tenant, r.request_id, r.region, r.instance_id, r.fingerprint, r.created_at_ms, ttl_s),
                consistency=self.levels.write,
                serial=self.levels.serial,
                idempotent=True,  # a re-run finds our own record, which answer_existing counts as won
            )
        except DeadlineExceeded as exc:
            # A timed-out LWT may still commit: the caller must retry the same claim, which then answers
            # with whichever record won (ours included).
            raise DeadlineExceeded(
                f"idempotency claim {r.tenant}/{r.request_id}: outcome unknown, retry the same claim "
                f"({exc.message})"
            ) from exc
        if result.applied:
            return ClaimOutcome(record, won=True)
        return claims.answer_existing(record, _record(result.rows[0]))

    async def reassign(self, record: IdempotencyRecord, instance_id: str, *, ttl_s: int) -> IdempotencyRecord:
        claims.check_reassign(record, self._region, instance_id, ttl_s)
        r = record
        try:
            result = await self.run(
                f"UPDATE {self.ks}.idempotency USING TTL ? SET instance_id = ? "
                "WHERE tenant = ? AND request_id = ? AND region = ? IF instance_id = ?",
                (ttl_s, instance_id, r.tenant, r.request_id, r.region, r.instance_id),
                consistency=self.levels.write,
                serial=self.levels.serial,
                idempotent=True,  # a re-run finds the claim moved to our id, which is what we wanted
            )
        except DeadlineExceeded as exc:
            raise DeadlineExceeded(
                f"moving claim {r.tenant}/{r.request_id}: outcome unknown, retry ({exc.message})"
            ) from exc
        if result.applied:
            return replace(record, instance_id=instance_id)
        current = result.rows[0].get("instance_id") if result.rows else None
        if current is None:  # no row: the claim has expired
            raise NotFound(f"claim of request_id {r.request_id!r} has expired", field="request_id")
        return replace(record, instance_id=current)

    async def reassert(self, record: IdempotencyRecord, *, written_at_ms: int, ttl_s: int) -> None:
        r = record
        await self.run(
            f"INSERT INTO {self.ks}.idempotency ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "USING TIMESTAMP ? AND TTL ?",
            (r.tenant, r.request_id, r.region, r.instance_id, r.fingerprint, r.created_at_ms,
             ts_us(check_ms(written_at_ms, "written_at_ms")), check_ttl(ttl_s)),
        )  # fmt: skip

    async def lookup(self, tenant: str, request_id: str, regions: Sequence[str]) -> list[IdempotencyRecord]:
        check_tenant(tenant)
        # One single-partition read per region, concurrently: token-aware, and portable to Cassandra 2.1
        # (which allows IN only on the last partition-key column).
        rows = await asyncio.gather(
            *(
                self.read_one(
                    f"SELECT {_COLUMNS} FROM {self.ks}.idempotency "
                    "WHERE tenant = ? AND request_id = ? AND region = ?",
                    (tenant, request_id, region),
                )
                for region in claims.check_lookup(request_id, regions)
            )
        )
        return claims.oldest_first(_record(row) for row in rows if row is not None)


def _record(r: dict[str, Any]) -> IdempotencyRecord:
    return IdempotencyRecord(
        region=r["region"],
        tenant=r["tenant"],
        request_id=r["request_id"],
        instance_id=r["instance_id"],
        fingerprint=r["fingerprint"],
        created_at_ms=r["created_at"],
    )
