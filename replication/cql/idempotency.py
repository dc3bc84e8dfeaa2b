"""Idempotency claims on Cassandra: `INSERT ... IF NOT EXISTS` at LOCAL_SERIAL in the claimer's region.

The consistency choice and its behaviour under a WAN partition are argued in replication.store. In short:
the partition key is (tenant, request_id, region), so Paxos for a claim runs only in the claiming region's
DC and never contends with another DC; other regions' claims are found by a LOCAL_QUORUM read first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fedlib.errors import DeadlineExceeded
from fedlib.names import check_id, check_tenant
from replication import claims
from replication.cql._base import CqlTable
from replication.cql.session import CqlSession
from replication.model import ClaimOutcome, IdempotencyRecord

_COLUMNS = "tenant, request_id, region, instance_id, fingerprint, created_at"


class CqlIdempotency(CqlTable):
    def __init__(self, session: CqlSession, keyspace: str, region: str) -> None:
        super().__init__(session, keyspace)
        self._region = check_id(region, "region")

    async def claim(
        self, record: IdempotencyRecord, *, ttl_s: int, peer_regions: Sequence[str] = ()
    ) -> ClaimOutcome:
        peers = claims.check_claim(record, self._region, ttl_s, peer_regions)
        earlier = await self.lookup(record.tenant, record.request_id, peers) if peers else []
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
