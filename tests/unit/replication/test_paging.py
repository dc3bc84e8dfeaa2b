"""replication.paging: keyset pages over the shard merge, checked against a plain sort (Hypothesis)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedlib.errors import InvalidArgument
from fedlib.ids import new_instance_id
from replication import paging
from replication.memory import ManualClock, MemoryListing
from replication.model import InstanceStatus, ListingEntry
from replication.paging import ListFilter, ListOrder, ListQuery

STATUSES = [InstanceStatus.ACTIVE, InstanceStatus.STOPPED, InstanceStatus.ERROR]


@st.composite
def entries(draw: st.DrawFn) -> list[ListingEntry]:
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, 2**80 - 1),
                st.from_regex(r"[aAb1][ab.\-1]{0,3}", fullmatch=True),
                st.integers(0, 20),
                st.sampled_from(["cpar", "cams"]),
                st.sampled_from(STATUSES),
            ),
            max_size=80,
            unique_by=lambda r: r[0],
        )
    )
    return [
        ListingEntry("acme", str(new_instance_id(cell, 1000, bits)), name, t, cell, cell[1:], "m1", status, 5)
        for bits, name, t, cell, status in rows
    ]


filters = st.builds(
    ListFilter,
    status=st.none() | st.sampled_from(STATUSES),
    site_id=st.none() | st.just("ams"),
    cell=st.none() | st.just("cpar"),
    name_prefix=st.none() | st.sampled_from(["a", "ab", "A", "b1", "1", "a.", "b-"]),
)


def _expected(rows: list[ListingEntry], order: ListOrder, f: ListFilter) -> list[ListingEntry]:
    keep = [
        e
        for e in rows
        if (f.status is None or e.status == f.status)
        and (f.site_id is None or e.site_id == f.site_id)
        and (f.cell is None or e.owner_cell == f.cell)
        and (f.name_prefix is None or e.name.startswith(f.name_prefix))
    ]
    return sorted(keep, key=lambda e: paging.sort_key(e, order), reverse=order.descending)


async def _pages(listing: MemoryListing, query: ListQuery) -> list[list[ListingEntry]]:
    pages, token = [], None
    while True:
        page = await listing.list(ListQuery(query.tenant, query.order, query.filter, query.page_size, token))
        pages.append(list(page.entries))
        if page.next_token is None:
            return pages
        token = page.next_token
        assert len(pages) < 10_000


@settings(max_examples=150, deadline=None)
@given(entries(), st.sampled_from(list(ListOrder)), filters, st.integers(1, 30), st.integers(1, 50))
def test_pages_concatenate_to_the_sorted_filtered_list(
    rows: list[ListingEntry], order: ListOrder, f: ListFilter, page_size: int, budget: int
) -> None:
    listing = MemoryListing(ManualClock().now_ms, scan_budget=budget)

    async def run() -> list[list[ListingEntry]]:
        for e in rows:
            await listing.put(e)
        return await _pages(listing, ListQuery("acme", order, f, page_size))

    pages = asyncio.run(run())
    assert [e for page in pages for e in page] == _expected(rows, order, f)
    assert all(len(page) <= page_size for page in pages)
    # Nothing dropped (no filter, or a prefix that is a key range): every page but the last is full, and
    # the last is empty only when the whole listing is.
    range_only = f == ListFilter(name_prefix=f.name_prefix) and (f.name_prefix is None or order.by_name)
    if range_only and budget >= page_size:
        assert all(len(page) == page_size for page in pages[:-1])
        assert pages[-1] or len(pages) == 1


def test_shards_are_stable_and_spread() -> None:
    ids = [str(new_instance_id("par1", 1000 + n, n)) for n in range(400)]
    counts = [0] * paging.SHARDS
    for iid in ids:
        counts[paging.shard_of(iid)] += 1
    assert min(counts) > 400 / paging.SHARDS / 2
    assert paging.shard_of(ids[0]) == paging.shard_of(ids[0])


def test_token_is_bound_to_its_query_and_key() -> None:
    query = ListQuery("acme", ListOrder.NAME_DESC, ListFilter(name_prefix="web"))
    plan = paging.plan(query, b"k1")
    assert plan.start == ("wec", "")  # a descending prefix starts just past the prefix range
    token = paging.encode_token(("web-2", "par1.x"), plan.scope, b"k1")
    resumed = paging.plan(
        ListQuery("acme", ListOrder.NAME_DESC, ListFilter(name_prefix="web"), page_token=token), b"k1"
    )
    assert resumed.start == ("web-2", "par1.x")
    with pytest.raises(InvalidArgument):  # another key (e.g. another deployment) did not issue it
        paging.plan(
            ListQuery("acme", ListOrder.NAME_DESC, ListFilter(name_prefix="web"), page_token=token), b"k2"
        )
    with pytest.raises(InvalidArgument):
        paging.plan(
            ListQuery("acme", ListOrder.NAME_DESC, ListFilter(name_prefix="we"), page_token=token), b"k1"
        )


def _signed(payload: bytes, key: bytes) -> str:
    """A token whose MAC is right for `key`: what a holder of the key could forge."""
    return base64.urlsafe_b64encode(paging._mac(key, payload) + payload).decode().rstrip("=")


CREATED = ListQuery("acme")
SCOPE = paging.plan(CREATED, b"k1").scope


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps([1, SCOPE, ["1700000000000", "par1.x"]]),  # a string where the bigint goes
        json.dumps([1, SCOPE, [2**70, "par1.x"]]),  # past a Cassandra bigint
        json.dumps([1, SCOPE, [-(2**63) - 1, "par1.x"]]),
        json.dumps([1, SCOPE, [True, "par1.x"]]),  # a bool is an int to Python, not to the driver
        json.dumps([1, SCOPE, [1.5, "par1.x"]]),
        json.dumps([1, SCOPE, [1, 7]]),  # an id that is not a string
        json.dumps([1, SCOPE, [1, ""]]),
        json.dumps([1, SCOPE, [1, "x" * 256]]),
        json.dumps([1, SCOPE, [1, "a", "b"]]),
        json.dumps([1, SCOPE, None]),
        json.dumps({"v": 1}),
        "[" * 50_000 + "]" * 50_000,  # deep enough to make json recurse past the interpreter's limit
        "\xff\xfe not json",
    ],
)
def test_a_token_signed_with_the_key_but_holding_a_bad_position_is_invalid_argument(payload: str) -> None:
    token = _signed(payload.encode("utf-8", "surrogateescape"), b"k1")
    with pytest.raises(InvalidArgument) as err:
        paging.plan(ListQuery("acme", page_token=token), b"k1")
    assert err.value.field == "page_token"


def test_a_name_order_token_must_hold_a_name_and_a_created_order_token_a_time() -> None:
    by_name = ListQuery("acme", ListOrder.NAME_ASC)
    name_scope = paging.plan(by_name, b"k1").scope
    with pytest.raises(InvalidArgument):  # a time under name order
        paging.plan(
            ListQuery(
                "acme", ListOrder.NAME_ASC, page_token=paging.encode_token((5, "a.b"), name_scope, b"k1")
            ),
            b"k1",
        )
    with pytest.raises(InvalidArgument):  # a name under created order
        paging.plan(ListQuery("acme", page_token=paging.encode_token(("web", "a.b"), SCOPE, b"k1")), b"k1")
    good = paging.encode_token((2**63 - 1, "a.b"), SCOPE, b"k1")
    assert paging.plan(ListQuery("acme", page_token=good), b"k1").start == (2**63 - 1, "a.b")


def test_a_huge_token_is_refused_without_being_echoed() -> None:
    with pytest.raises(InvalidArgument) as err:
        paging.plan(ListQuery("acme", page_token="A" * 1_000_000), b"k1")
    assert len(str(err.value)) < 200


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=2000))
def test_any_garbage_token_is_invalid_argument_never_another_error(token: str) -> None:
    if not token:
        return  # an empty token means "the first page"
    with pytest.raises(InvalidArgument):
        paging.plan(ListQuery("acme", page_token=token), b"k1")


@settings(max_examples=300, deadline=None)
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    )
)
def test_any_signed_payload_decodes_to_a_valid_position_or_invalid_argument(payload: object) -> None:
    token = _signed(json.dumps([1, SCOPE, payload]).encode(), b"k1")
    try:
        start = paging.plan(ListQuery("acme", page_token=token), b"k1").start
    except InvalidArgument:
        return
    assert start is not None
    first, instance_id = start
    assert type(first) is int and -(2**63) <= first < 2**63
    assert isinstance(instance_id, str) and 0 < len(instance_id) <= 255


@pytest.mark.parametrize("bad", [dict(page_size=0), dict(page_size=1001), dict(tenant="Not A Tenant")])
def test_query_validation(bad: dict[str, object]) -> None:
    args: dict[str, object] = {"tenant": "acme", **bad}
    with pytest.raises(InvalidArgument):
        ListQuery(**args)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        ListFilter(name_prefix="bad prefix")
