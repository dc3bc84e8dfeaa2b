"""The global keyspace's small federation-wide rows: the revocation list and the federation secrets.

Revocations are written at LOCAL_QUORUM where the operator runs the command and replicate to every DC
like the rest of the keyspace; each row's TTL ends when no token it covers can still be valid.
A secret is made once by a cross-DC LWT (SERIAL, not LOCAL_SERIAL: every region's routers must end up
with the same key), normally by `cellfed schema apply`; afterwards it is only read, locally."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fedlib.errors import StoreError
from replication.cql._base import BUCKET, CqlTable
from replication.model import Revocation, RevocationKind

_COLUMNS = "kind, key, issued_before, revoked_at, until, reason"


class CqlRevocations(CqlTable):
    async def revoke(self, revocation: Revocation) -> None:
        r = revocation
        ttl_s = max(1, math.ceil((r.until_ms - r.revoked_at_ms) / 1000))
        await self.run(
            f"INSERT INTO {self.ks}.revocations (bucket, {_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
            (BUCKET, r.kind.value, r.key, r.issued_before_ms, r.revoked_at_ms, r.until_ms, r.reason, ttl_s),
        )

    async def all(self) -> list[Revocation]:
        rows = await self.read(f"SELECT {_COLUMNS} FROM {self.ks}.revocations WHERE bucket = ?", (BUCKET,))
        return [_revocation(row) for row in rows]


def _revocation(r: dict[str, Any]) -> Revocation:
    return Revocation(
        RevocationKind(r["kind"]),
        r["key"],
        r["issued_before"],
        r["revoked_at"],
        r["until"],
        r["reason"] or "",
    )


class CqlSecrets(CqlTable):
    async def get(self, name: str) -> bytes | None:
        row = await self.read_one(f"SELECT value FROM {self.ks}.federation_secrets WHERE name = ?", (name,))
        return None if row is None else bytes(row["value"])

    async def get_or_create(self, name: str, make: Callable[[], bytes]) -> bytes:
        found = await self.get(name)
        if found is not None:
            return found
        value = make()
        result = await self.run(
            f"INSERT INTO {self.ks}.federation_secrets (name, value) VALUES (?, ?) IF NOT EXISTS",
            (name, value),
            consistency="QUORUM",
            serial="SERIAL",
            idempotent=True,  # a re-run finds the row made by the first try (ours or another's)
        )
        if result.applied:
            return value
        existing = result.rows[0].get("value") if result.rows else None  # the winner's, from the LWT
        if existing is None:
            raise StoreError(f"federation secret {name!r}: the LWT lost but returned no value")
        return bytes(existing)
