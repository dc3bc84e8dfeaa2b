"""Keyset paging of a tenant's listing: the pure core shared by the Cassandra adapter and the twin.

Layout it assumes (see schema.py): a tenant's listing rows are spread over several partitions (since
schema v3 one per owning cell's current generation, replication.listing_gens), each clustered by the sort
key (created_at, instance_id) or (name, instance_id). A page is a k-way merge of the partitions read
*after* a position; the page token is that position, never an offset or a partition, so page N reads what
page 2 reads and a token survives a generation rotation. The merge only trusts rows up to the "frontier"
(the smallest last key among partitions that may hold more), so no row is skipped or repeated across pages.

Filters on status/site/cell (and a name prefix under created order) are applied while scanning, within a
scan budget: a selective filter yields a short (even empty) page with a token instead of a page whose cost
grows with the data. A name prefix under name order becomes a key range.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fedlib.errors import InvalidArgument
from fedlib.names import check_display_name, check_id, check_tenant
from replication.model import InstanceStatus, ListingEntry, ListPage, stored_status

# The hash shards of the schema v1-2 layout (listing_by_created/_by_name, read by nothing since v3);
# kept for tools that still reason about that layout.
SHARDS = 8
MAX_PAGE_SIZE = 1000
DEFAULT_SCAN_BUDGET = 2000
_FILTER_CHUNK = 100  # rows per shard per round when a filter may discard most of them
_TOKEN_VERSION = 1
_MAC_LEN = 12
# Bounds a decoded position must keep: a token this code issued is a few hundred characters, its name
# and id are short, its time a Cassandra bigint.
_MAX_TOKEN_CHARS = 1024
_MAX_KEY_CHARS = 255
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1

Position = tuple[int, str] | tuple[str, str]

# The federation secret (replication.store.FederationSecrets) every router signs page tokens with, so a
# token from one router pages on at another; made at schema apply, never a constant in the source.
LISTING_TOKEN_KEY = "listing-page-token-key"


def new_token_key() -> bytes:
    """A fresh key: the federation's (made once), or a process's own where no router shares its tokens."""
    return secrets.token_bytes(32)


class ListOrder(enum.StrEnum):
    CREATED_ASC = "create_time"
    CREATED_DESC = "create_time desc"
    NAME_ASC = "display_name"
    NAME_DESC = "display_name desc"

    @property
    def by_name(self) -> bool:
        return self in (ListOrder.NAME_ASC, ListOrder.NAME_DESC)

    @property
    def descending(self) -> bool:
        return self in (ListOrder.CREATED_DESC, ListOrder.NAME_DESC)


@dataclass(frozen=True)
class ListFilter:
    """A conjunction; None means "any"."""

    status: InstanceStatus | None = None
    site_id: str | None = None
    cell: str | None = None
    name_prefix: str | None = None
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None  # an instance with a NIC on it

    def __post_init__(self) -> None:
        if self.status is not None:
            object.__setattr__(self, "status", stored_status(self.status))
        if self.site_id is not None:
            check_id(self.site_id, "site_id")
        if self.cell is not None:
            check_id(self.cell, "cell")
        if self.name_prefix is not None:
            check_display_name(self.name_prefix, "name_prefix")


@dataclass(frozen=True)
class ListQuery:
    tenant: str
    order: ListOrder = ListOrder.CREATED_ASC
    filter: ListFilter = ListFilter()
    page_size: int = 50
    page_token: str | None = None

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
        object.__setattr__(self, "order", ListOrder(self.order))
        if isinstance(self.page_size, bool) or not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 1-{MAX_PAGE_SIZE}", field="page_size")


def shard_of(instance_id: str) -> int:
    """Stable across processes and versions (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(instance_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % SHARDS


def sort_key(entry: ListingEntry, order: ListOrder) -> Position:
    if order.by_name:
        return (entry.name, entry.instance_id)
    return (entry.created_at_ms, entry.instance_id)


@dataclass(frozen=True)
class ListPlan:
    """A decoded query: where to resume, when to stop, which rows match."""

    query: ListQuery
    start: Position | None
    scope: str
    key: bytes

    @property
    def order(self) -> ListOrder:
        return self.query.order

    def before(self, a: Position, b: Position) -> bool:
        """True when key `a` comes before `b` in this listing's order."""
        return a > b if self.order.descending else a < b

    def past_end(self, entry: ListingEntry) -> bool:
        prefix = self.query.filter.name_prefix
        if not (prefix and self.order.by_name) or entry.name.startswith(prefix):
            return False
        return entry.name < prefix if self.order.descending else entry.name > prefix

    def matches(self, entry: ListingEntry) -> bool:
        f = self.query.filter
        return (
            (f.status is None or entry.status == f.status)
            and (f.site_id is None or entry.site_id == f.site_id)
            and (f.cell is None or entry.owner_cell == f.cell)
            and (f.name_prefix is None or entry.name.startswith(f.name_prefix))
            and (f.address is None or any(a.holds(f.address) for a in entry.addresses))
        )

    def chunk(self, need: int, budget: int) -> int:
        """Rows to ask of each shard per round. With nothing dropped, need + 1 fills a page in one round and
        shows whether anything follows it (so the last page carries no token); a filter that drops rows
        reads bigger chunks, but never more than the scan budget left."""
        f = self.query.filter
        drops = f.status or f.site_id or f.cell or f.address or (f.name_prefix and not self.order.by_name)
        return max(1, min(max(need, _FILTER_CHUNK), budget)) if drops else need + 1


def plan(query: ListQuery, key: bytes) -> ListPlan:
    scope = _scope(query)
    if query.page_token:
        return ListPlan(query, _decode(query.page_token, scope, key, query.order.by_name), scope, key)
    return ListPlan(query, _initial(query), scope, key)


@dataclass(frozen=True)
class Step:
    matched: tuple[ListingEntry, ...]
    scanned: int
    position: Position | None  # resume strictly after this key; None: the listing is exhausted


def merge_step(
    p: ListPlan, chunks: Sequence[Sequence[ListingEntry]], limit: int, need: int, budget: int
) -> Step:
    """One round: each chunk is a shard's next `limit` rows (in order) after the current position.
    Stops after `need` matches or `budget` rows scanned, whichever comes first."""
    frontier: Position | None = None
    for chunk in chunks:
        if len(chunk) >= limit:  # this shard may hold more rows past its last one
            last = sort_key(chunk[-1], p.order)
            if frontier is None or p.before(last, frontier):
                frontier = last
    rows = sorted(
        (r for c in chunks for r in c if frontier is None or not p.before(frontier, sort_key(r, p.order))),
        key=lambda r: sort_key(r, p.order),
        reverse=p.order.descending,
    )
    matched: list[ListingEntry] = []
    for scanned, row in enumerate(rows, start=1):
        if p.past_end(row):
            return Step(tuple(matched), scanned - 1, None)
        if p.matches(row):
            matched.append(row)
        if len(matched) == need or scanned >= budget:
            # No token when nothing can follow, so a listing never ends on an empty page needlessly.
            more = not p.past_end(rows[scanned]) if scanned < len(rows) else frontier is not None
            return Step(tuple(matched), scanned, sort_key(row, p.order) if more else None)
    return Step(tuple(matched), len(rows), frontier)


# Reads, for every shard, up to `limit` rows strictly after a position (None: from the start) in plan
# order; adapters choose how (the Cassandra one reads the shards concurrently).
RoundReader = Callable[[Position | None, int], Awaitable[Sequence[Sequence[ListingEntry]]]]


async def run(p: ListPlan, read_round: RoundReader, scan_budget: int = DEFAULT_SCAN_BUDGET) -> ListPage:
    """Drive rounds until the page is full, the listing ends, or the scan budget is spent."""
    scan_budget = max(1, scan_budget)  # every page makes progress, however small the budget
    position, scanned = p.start, 0
    entries: list[ListingEntry] = []
    while True:
        need, budget = p.query.page_size - len(entries), scan_budget - scanned
        limit = p.chunk(need, budget)
        step = merge_step(p, await read_round(position, limit), limit, need, budget)
        entries.extend(step.matched)
        scanned += step.scanned
        if step.position is None:
            return ListPage(tuple(entries), None)
        position = step.position
        if len(entries) >= p.query.page_size or scanned >= scan_budget:
            return ListPage(tuple(entries), encode_token(position, p.scope, p.key))


def encode_token(position: Position, scope: str, key: bytes) -> str:
    payload = json.dumps([_TOKEN_VERSION, scope, list(position)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_mac(key, payload) + payload).decode().rstrip("=")


def _decode(token: str, scope: str, key: bytes, by_name: bool) -> Position:
    bad = InvalidArgument("page_token is not a token this listing issued", field="page_token")
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise bad  # before any decoding: a huge token costs nothing but this comparison
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise bad from None
    mac, payload = raw[:_MAC_LEN], raw[_MAC_LEN:]
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise bad
    try:
        version, token_scope, (first, instance_id) = json.loads(payload)
    except (ValueError, TypeError, RecursionError):  # RecursionError: a deeply nested payload
        raise bad from None
    if version != _TOKEN_VERSION or token_scope != scope:
        raise InvalidArgument(
            "page_token was issued for another tenant, filter or order; restart the listing",
            field="page_token",
        )
    # The MAC proves a router of this deployment issued the token; the types are checked all the same,
    # so a leaked or mis-keyed token can at worst restart a listing, never reach a query with a string
    # where a bigint goes (the driver's error surfaced as INTERNAL).
    if not _valid_position(first, instance_id, by_name):
        raise bad
    return (first, instance_id)


def _valid_position(first: object, instance_id: object, by_name: bool) -> bool:
    """A position as sort_key makes it: (name, id) under name order, (created_at_ms, id) otherwise."""
    if not isinstance(instance_id, str) or not 0 < len(instance_id) <= _MAX_KEY_CHARS:
        return False
    if by_name:
        return isinstance(first, str) and 0 < len(first) <= _MAX_KEY_CHARS
    return type(first) is int and _BIGINT_MIN <= first <= _BIGINT_MAX  # bool is an int: refused too


def _mac(key: bytes, payload: bytes) -> bytes:
    # Integrity, not secrecy: a token only names a position in the caller's own listing.
    return hashlib.blake2b(payload, key=key[:64], digest_size=_MAC_LEN).digest()


def _scope(query: ListQuery) -> str:
    f = query.filter
    parts = [query.tenant, query.order.value, f.status or "", f.site_id or "", f.cell or "", f.name_prefix]
    if f.address is not None:  # only then: tokens issued before address filters stay valid
        parts.append(str(f.address))
    return hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).hexdigest()


def _initial(query: ListQuery) -> Position | None:
    """A name prefix under name order starts at the edge of its range instead of scanning to it."""
    prefix = query.filter.name_prefix
    if not (prefix and query.order.by_name):
        return None
    if query.order.descending:
        return (prefix[:-1] + chr(ord(prefix[-1]) + 1), "")  # every name with the prefix sorts below this
    return (prefix, "")  # every name with the prefix sorts at or above this; ids are never empty
