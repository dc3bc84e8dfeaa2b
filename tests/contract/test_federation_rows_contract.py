"""The federation rows' contract (revocation list, federation secrets), on the twin and on real
Cassandra (tests/contract/conftest.py): a revocation is listed until what it covers has expired, then
gone by itself; the newest write of a key wins; a secret is made once and every caller gets that one."""

from __future__ import annotations

import pytest

from fedlib.errors import InvalidArgument
from replication.model import Revocation, RevocationKind
from tests.contract.harness import Harness


def _mine(h: Harness, rows: list[Revocation]) -> list[Revocation]:
    # Tests of a module share the Cassandra keyspace: keep to the keys this test made.
    return [r for r in rows if h.unique in r.key]


def _token_id(h: Harness, n: int) -> str:
    return f"{h.unique}{n:024x}"  # 8 + 24 hex characters


async def test_revocations_are_listed_until_what_they_cover_expires(h: Harness) -> None:
    now = h.now_ms()
    token = Revocation(RevocationKind.TOKEN, _token_id(h, 1), 0, now, now + 2_000, "leaked in a ticket")
    tenant = Revocation(RevocationKind.TENANT, f"t{h.unique}", now, now, now + 60_000, "")
    await h.store.revocations.revoke(token)
    await h.store.revocations.revoke(tenant)
    assert _mine(h, await h.store.revocations.all()) == [tenant, token]  # sorted by (kind, key)
    await h.advance(3.5)
    assert _mine(h, await h.store.revocations.all()) == [tenant]  # the token's own lifetime ended


async def test_revoking_again_keeps_the_newest(h: Harness) -> None:
    now = h.now_ms()
    first = Revocation(RevocationKind.TENANT, f"t{h.unique}", now - 1_000, now, now + 60_000, "first")
    second = Revocation(RevocationKind.TENANT, f"t{h.unique}", now, now + 1, now + 60_000, "second")
    await h.store.revocations.revoke(first)
    await h.store.revocations.revoke(second)
    assert _mine(h, await h.store.revocations.all()) == [second]


@pytest.mark.parametrize(
    ("kind", "key", "field"),
    [(RevocationKind.TOKEN, "not-hex", "token_id"), (RevocationKind.TENANT, "Bad Tenant", "tenant")],
)
def test_a_revocation_of_a_bad_key_is_refused(kind: RevocationKind, key: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        Revocation(kind, key, 0, 1, 2)
    assert err.value.field == field


async def test_a_secret_is_made_once_and_every_caller_gets_that_one(h: Harness) -> None:
    name = f"secret-{h.unique}"
    first = await h.secrets.get_or_create(name, lambda: b"A" * 32)
    again = await h.secrets.get_or_create(name, lambda: b"B" * 32)
    assert first == again == b"A" * 32
