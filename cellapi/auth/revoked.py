"""The revocation list as a router holds it: a pure value built from the global keyspace's rows
(replication.model.Revocation) and checked on every authenticated call, after the signature.

A token is refused when its id is listed, or when it was issued before its tenant's listed time. Rows
last until what they cover has expired, so the set stays small: one small partition, re-read each
heartbeat (cellapi.router.app), which bounds how late a revocation takes effect at a router."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cellapi.auth.tokens import Claims
from fedlib.errors import Unauthenticated
from replication.model import Revocation, RevocationKind


@dataclass(frozen=True)
class RevokedSet:
    tokens: frozenset[str] = frozenset()
    tenants_before_ms: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[Revocation]) -> RevokedSet:
        tokens: set[str] = set()
        tenants: dict[str, int] = {}
        for row in rows:
            if row.kind is RevocationKind.TOKEN:
                tokens.add(row.key)
            else:
                tenants[row.key] = max(tenants.get(row.key, 0), row.issued_before_ms)
        return cls(frozenset(tokens), tenants)

    def check(self, claims: Claims) -> None:
        if claims.token_id and claims.token_id in self.tokens:
            raise Unauthenticated("the token was revoked; ask for a new one")
        before = self.tenants_before_ms.get(claims.tenant)
        # iat counts whole seconds: a token of the revocation's own second may predate it, so it goes too.
        if before is not None and claims.issued_at * 1000 <= before:
            raise Unauthenticated(
                f"tokens of tenant {claims.tenant} issued before its revocation are refused; get a new one"
            )
