"""The store contract: every test runs against the in-memory twin and against real Cassandra (3 DCs).

What the twin promises, Cassandra keeps: last-writer-wins by the owner's timestamps, TTL expiry, keyset
paging with opaque tokens, and claim-once idempotency.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import replace

import pytest

from fedlib.addresses import NicAddress
from fedlib.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from fedlib.ids import new_instance_id
from fedlib.macs import mac_for
from replication.model import (
    CapacitySummary,
    Cell,
    CellState,
    IdempotencyRecord,
    IndexEntry,
    InstanceStatus,
    ListingEntry,
    RouterMember,
    RouterReport,
    Site,
    SiteState,
)
from replication.paging import ListFilter, ListOrder, ListQuery, sort_key
from replication.store import IdempotencyLedger, TenantListing
from tests.contract.harness import LOCAL, PEER, Harness

T0 = 1_750_000_000_000


def _site(site_id: str, at: int, state: SiteState = SiteState.ENABLED) -> Site:
    return Site(site_id, "eu-west", 48.85, 2.35, f"{site_id}.example:7000", state, at)


async def test_sites_last_writer_wins_by_timestamp(h: Harness) -> None:
    d, sid = h.store.directory, f"par-{h.unique}"
    with pytest.raises(NotFound):
        await d.get_site(sid)
    await d.put_site(_site(sid, T0 + 10))
    await d.put_site(_site(sid, T0 + 5, SiteState.DRAINED))  # older report arriving late: ignored
    assert (await d.get_site(sid)).state is SiteState.ENABLED
    await d.put_site(_site(sid, T0 + 20, SiteState.DRAINED))
    assert await d.get_site(sid) == _site(sid, T0 + 20, SiteState.DRAINED)
    await d.delete_site(sid, at_ms=T0 + 30)
    await d.put_site(_site(sid, T0 + 25))  # older than the delete: does not resurrect
    with pytest.raises(NotFound):
        await d.get_site(sid)


async def test_directory_lists_sorted(h: Harness) -> None:
    d = h.store.directory
    ids = [f"{p}-{h.unique}" for p in ("zrh", "ams", "lis")]
    for i, sid in enumerate(ids):
        await d.put_site(_site(sid, T0 + i))
        await d.put_cell(Cell(f"c{sid}", sid, "eu-west", f"{sid}:7100", CellState.ENABLED, T0 + i))
    sites = [s.site_id for s in await d.list_sites() if s.site_id.endswith(h.unique)]
    assert sites == sorted(ids)
    cells = [c for c in await d.list_cells() if c.cell_id.endswith(h.unique)]
    assert [c.cell_id for c in cells] == sorted(f"c{sid}" for sid in ids)
    await d.put_cell(Cell(f"c{ids[0]}", ids[0], "eu-west", "x:1", CellState.DRAINED, T0 + 9))
    assert (await d.get_cell(f"c{ids[0]}")).state is CellState.DRAINED
    await d.delete_cell(f"c{ids[0]}", at_ms=T0 + 10)
    with pytest.raises(NotFound):
        await d.get_cell(f"c{ids[0]}")
    with pytest.raises(InvalidArgument):
        await d.get_site("Not An Id")


async def test_heartbeats_expire(h: Harness) -> None:
    r = h.store.routers
    a = RouterMember(f"ra-{h.unique}", "par1", "ra:7000", h.now_ms())
    b = RouterMember(f"rb-{h.unique}", "par1", "rb:7000", h.now_ms())
    # Cassandra counts TTLs in whole seconds from the write's second: a TTL of n lives n-1 to n seconds.
    await r.heartbeat(a, ttl_s=3)
    await r.heartbeat(b, ttl_s=60)

    def mine(members: list[RouterMember]) -> list[str]:
        return [m.router_id for m in members if m.router_id.endswith(h.unique)]

    assert mine(await r.live_members()) == [a.router_id, b.router_id]
    await h.advance(3.5)
    assert mine(await r.live_members()) == [b.router_id]
    await r.heartbeat(a, ttl_s=60)
    await r.leave(b.router_id)
    assert mine(await r.live_members()) == [a.router_id]
    with pytest.raises(InvalidArgument):
        await r.heartbeat(a, ttl_s=0)


def _capacity(cell: str, free: int, at: int) -> CapacitySummary:
    return CapacitySummary(cell, 64, free, 262144, 1024 * free, 4000, 100, 3, 4, at)


async def test_capacity_upsert(h: Harness) -> None:
    c, cell = h.store.capacity, f"cell-{h.unique}"
    with pytest.raises(NotFound):
        await c.get(cell)
    await c.publish(_capacity(cell, 10, T0 + 1))
    await c.publish(_capacity(cell, 8, T0 + 3))
    await c.publish(_capacity(cell, 9, T0 + 2))  # stale: ignored
    assert await c.get(cell) == _capacity(cell, 8, T0 + 3)
    await c.publish(_capacity(f"a{cell}", 1, T0))
    assert [s.cell_id for s in await c.all() if s.cell_id.endswith(h.unique)] == [f"a{cell}", cell]
    await c.remove(cell, at_ms=T0 + 4)
    with pytest.raises(NotFound):
        await c.get(cell)


async def test_capacity_carries_instances_by_status_newest_whole(h: Harness) -> None:
    c, cell = h.store.capacity, f"cell-{h.unique}"

    def summary(at: int, **by_status: int) -> CapacitySummary:
        n = sum(by_status.values())
        return CapacitySummary(cell, 64, 60, 262144, 1024, 4000, 100, n, 4, at, by_status)

    await c.publish(summary(T0 + 1, ACTIVE=3, BUILDING=2))
    assert (await c.get(cell)).instances_by_status == {"ACTIVE": 3, "BUILDING": 2}
    await c.publish(summary(T0 + 3, ACTIVE=5))  # the builds finished: BUILDING must not linger
    await c.publish(summary(T0 + 2, ACTIVE=4, ERROR=1))  # older, arriving late: changes nothing
    assert await c.get(cell) == summary(T0 + 3, ACTIVE=5)
    await c.publish(summary(T0 + 4))  # every instance gone: an empty map, not the last one
    assert (await c.get(cell)).instances_by_status == {}
    with pytest.raises(InvalidArgument) as err:
        summary(T0, active=1)
    assert err.value.field == "instances_by_status"


async def test_capacity_carries_the_cells_networks_newest_whole(h: Harness) -> None:
    c, cell = h.store.capacity, f"cell-{h.unique}"

    def summary(at: int, networks: dict[str, int], default: str = "public") -> CapacitySummary:
        return CapacitySummary(cell, 64, 60, 262144, 1024, 4000, 100, 0, 4, at, {}, networks,
                               default if networks else "")  # fmt: skip

    await c.publish(summary(T0 + 1, {"public": 5, "v6only": -1}))
    got = await c.get(cell)
    assert (got.networks, got.default_network) == ({"public": 5, "v6only": -1}, "public")
    await c.publish(summary(T0 + 3, {"public": 0}))  # v6only dropped from the declaration: not lingering
    await c.publish(summary(T0 + 2, {"public": 4, "old": 1}))  # older, arriving late: changes nothing
    assert await c.get(cell) == summary(T0 + 3, {"public": 0})
    await c.publish(summary(T0 + 4, {}))  # a cell that declares none
    got = await c.get(cell)
    assert (got.networks, got.default_network) == ({}, "")
    for networks, default, field in (({"Bad Name": 1}, "Bad Name", "networks"),
                                     ({"public": -2}, "public", "networks"),
                                     ({"public": 1}, "other", "default_network"),
                                     ({"public": 1}, "", "default_network")):  # fmt: skip
        with pytest.raises(InvalidArgument) as err:
            CapacitySummary(cell, 64, 60, 262144, 1024, 4000, 100, 0, 4, T0, {}, networks, default)
        assert err.value.field == field


def _report(router: str, at: int, rps: float, rtt: dict[str, float]) -> RouterReport:
    return RouterReport(router, "par1", at, 30_000, rps, rps / 10, 12.5 if rps else None, rtt)


async def test_router_reports_newest_wins_and_outlive_the_heartbeat(h: Harness) -> None:
    r = h.store.routers
    a, b = f"ra-{h.unique}", f"rb-{h.unique}"
    await r.heartbeat(RouterMember(a, "par1", "ra:7000", h.now_ms()), ttl_s=2)
    await r.publish_report(_report(a, T0 + 10, 4.0, {"nyc1": 36.5, "par1": 0.4}))
    await r.publish_report(_report(a, T0 + 5, 9.0, {"sin1": 90.0}))  # older, late: ignored whole
    await r.publish_report(_report(b, T0 + 7, 0.0, {}))

    def mine(reports: list[RouterReport]) -> list[RouterReport]:
        return [x for x in reports if x.router_id.endswith(h.unique)]

    assert mine(await r.reports()) == [
        _report(a, T0 + 10, 4.0, {"nyc1": 36.5, "par1": 0.4}),
        _report(b, T0 + 7, 0.0, {}),
    ]
    assert mine(await r.reports())[1].p99_latency_ms is None
    await r.publish_report(_report(a, T0 + 20, 2.0, {"par1": 0.5}))  # a site left the map: gone from it
    await r.leave(a)
    await h.advance(2.5)  # the heartbeat expired; the report stays, for the view to show with its age
    assert [m.router_id for m in await r.live_members() if m.router_id.endswith(h.unique)] == []
    assert mine(await r.reports())[0] == _report(a, T0 + 20, 2.0, {"par1": 0.5})


def _index(cell: str, n: int, status: InstanceStatus, at: int) -> IndexEntry:
    iid = str(new_instance_id(cell, T0 + n, n))
    return IndexEntry(iid, cell, cell, "acme", f"vm-{n}", "m1-small", status, T0 + n, at, _nics(n))


def _nics(n: int) -> tuple[NicAddress, ...]:
    """Every third instance has no NIC; the others one on public (IPv4 and IPv6), some an IPv6-only second."""
    if n % 3 == 0:
        return ()
    public = NicAddress("public", mac_for("cpar", 2 * n), ipaddress.IPv4Address(f"203.0.113.{n % 250}"),
                        ipaddress.IPv6Address(f"2001:db8::{n:x}"))  # fmt: skip
    backend_ipv6 = ipaddress.IPv6Address(f"2001:db8:1::{n:x}")
    backend = NicAddress("backend", mac_for("cpar", 2 * n + 1), None, backend_ipv6)
    return (public, backend) if n % 3 == 2 else (public,)


async def test_index_put_get_delete(h: Harness) -> None:
    ix, cell = h.store.index, f"cell-{h.unique}"
    e = _index(cell, 1, InstanceStatus.BUILDING, T0 + 1)
    with pytest.raises(NotFound):
        await ix.get(e.instance_id)
    await ix.put(e)
    assert await ix.get(e.instance_id) == e and len(e.addresses) == 1  # its NIC comes back whole
    no_nic = _index(cell, 3, InstanceStatus.ACTIVE, T0 + 1)
    await ix.put(no_nic)
    assert (await ix.get(no_nic.instance_id)).addresses == ()
    active = _index(cell, 1, InstanceStatus.ACTIVE, T0 + 2)
    await ix.put(active)
    await ix.put(e)  # the BUILDING report again, late: ignored
    assert await ix.get(e.instance_id) == active
    await ix.delete(e.instance_id, at_ms=T0 + 3)
    with pytest.raises(NotFound):
        await ix.get(e.instance_id)
    with pytest.raises(InvalidArgument):
        await ix.get("not-an-instance-id")


def _listing(tenant: str, n: int, rng: random.Random) -> ListingEntry:
    cell = rng.choice(["cpar", "cams", "clis"])
    iid = str(new_instance_id(cell, T0 + rng.randrange(50) * 1000, rng.getrandbits(80)))  # created_at ties
    return ListingEntry(
        tenant=tenant,
        instance_id=iid,
        name=f"{rng.choice(['web', 'db', 'Web', 'cache'])}-{rng.randrange(40):02d}",
        created_at_ms=T0 + (n % 50) * 1000,
        owner_cell=cell,
        site_id=cell[1:],
        flavor="m1-small",
        status=rng.choice([InstanceStatus.ACTIVE, InstanceStatus.STOPPED, InstanceStatus.ERROR]),
        updated_at_ms=T0 + 100_000,
        addresses=_nics(n),
    )


async def _fill(h: Harness, tenant: str, count: int = 120) -> list[ListingEntry]:
    rng = random.Random(7)
    entries = [_listing(tenant, n, rng) for n in range(count)]
    for e in entries:
        await h.store.listing.put(e)
    return entries


async def _all_pages(listing: TenantListing, query: ListQuery) -> tuple[list[ListingEntry], int]:
    out: list[ListingEntry] = []
    pages, token = 0, None
    while True:
        page = await listing.list(ListQuery(query.tenant, query.order, query.filter, query.page_size, token))
        out.extend(page.entries)
        pages += 1
        if page.next_token is None:
            return out, pages
        token = page.next_token
        assert pages < 500


FILTERS = [
    ListFilter(),
    ListFilter(status=InstanceStatus.ERROR),
    ListFilter(site_id="ams"),
    ListFilter(cell="clis", status=InstanceStatus.ACTIVE),
    ListFilter(name_prefix="web-1"),
    ListFilter(name_prefix="W"),
    ListFilter(address=ipaddress.IPv4Address("203.0.113.7")),
    ListFilter(address=ipaddress.IPv6Address("2001:db8:1::b"), status=InstanceStatus.ACTIVE),
    ListFilter(address=ipaddress.IPv4Address("192.0.2.1")),  # nobody's
]


async def test_listing_pages_concatenate_to_sorted_filtered_list(h: Harness) -> None:
    tenant = f"t{h.unique}"
    entries = await _fill(h, tenant)
    for order in ListOrder:
        for f in FILTERS:
            query = ListQuery(tenant, order, f, page_size=25)
            expected = sorted(
                (e for e in entries if _matches(e, f)),
                key=lambda e: sort_key(e, order),
                reverse=order.descending,
            )
            got, pages = await _all_pages(h.store.listing, query)
            assert got == expected, (order, f)
            if f == ListFilter():
                assert pages == 5  # 120 entries by 25, no empty trailing page


def _matches(e: ListingEntry, f: ListFilter) -> bool:
    return (
        (f.status is None or e.status == f.status)
        and (f.site_id is None or e.site_id == f.site_id)
        and (f.cell is None or e.owner_cell == f.cell)
        and (f.name_prefix is None or e.name.startswith(f.name_prefix))
        and (f.address is None or f.address in {a for n in e.addresses for a in (n.ipv4, n.ipv6)})
    )


async def test_listing_scan_budget_gives_short_pages_not_wrong_ones(h: Harness) -> None:
    tenant = f"t{h.unique}"
    entries = await _fill(h, tenant, 60)
    f = ListFilter(status=InstanceStatus.ERROR)
    expected = sorted(
        (e for e in entries if _matches(e, f)), key=lambda e: sort_key(e, ListOrder.CREATED_ASC)
    )
    got, pages = await _all_pages(h.listing_with_budget(5), ListQuery(tenant, filter=f, page_size=10))
    assert got == expected
    assert pages > -(-len(expected) // 10)  # the budget cut pages short


async def test_listing_tokens_are_bound_and_tamper_evident(h: Harness) -> None:
    tenant = f"t{h.unique}"
    await _fill(h, tenant, 30)
    listing = h.store.listing
    first = await listing.list(ListQuery(tenant, page_size=10))
    token = first.next_token
    assert token is not None and "created" not in token and tenant not in token
    second = await listing.list(ListQuery(tenant, page_size=10, page_token=token))
    assert [e.instance_id for e in second.entries] != [e.instance_id for e in first.entries]
    tampered = token[:10] + ("x" if token[10] != "x" else "y") + token[11:]
    for bad in (
        ListQuery(tenant, page_size=10, page_token=tampered),
        ListQuery(tenant, page_size=10, page_token="!!not base64!!"),
        ListQuery(tenant, filter=ListFilter(status=InstanceStatus.ACTIVE), page_size=10, page_token=token),
        ListQuery(tenant, ListOrder.NAME_ASC, page_size=10, page_token=token),
        ListQuery(f"u{h.unique}", page_size=10, page_token=token),
    ):
        with pytest.raises(InvalidArgument) as err:
            await listing.list(bad)
        assert err.value.field == "page_token"
    with pytest.raises(InvalidArgument):
        ListQuery(tenant, page_size=0)


async def test_listing_rename_and_delete(h: Harness) -> None:
    tenant = f"t{h.unique}"
    entries = await _fill(h, tenant, 5)
    listing, e = h.store.listing, entries[0]
    renamed = ListingEntry(**{**e.__dict__, "name": "zz-renamed", "updated_at_ms": e.updated_at_ms + 1})
    await listing.put(renamed, previous_name=e.name)
    by_name = (await listing.list(ListQuery(tenant, ListOrder.NAME_ASC))).entries
    assert [x.name for x in by_name if x.instance_id == e.instance_id] == ["zz-renamed"]
    await listing.delete(renamed, at_ms=renamed.updated_at_ms + 1)
    for order in (ListOrder.NAME_ASC, ListOrder.CREATED_DESC):
        left = (await listing.list(ListQuery(tenant, order))).entries
        assert sorted(x.instance_id for x in left) == sorted(x.instance_id for x in entries[1:])


def _claim(
    h: Harness, request: str, n: int, fingerprint: str = "fp-1", region: str = LOCAL
) -> IdempotencyRecord:
    iid = str(new_instance_id("cpar", T0 + n, n))
    return IdempotencyRecord(region, f"t{h.unique}", request, iid, fingerprint, T0 + n)


async def test_idempotency_claim_once(h: Harness) -> None:
    ledger = h.store.idempotency
    first = await ledger.claim(_claim(h, "req-1", 1), ttl_s=600)
    assert first.won and first.record == _claim(h, "req-1", 1)
    again = await ledger.claim(_claim(h, "req-1", 2), ttl_s=600)  # a retry, minting a new id
    assert not again.won and again.record.instance_id == first.record.instance_id
    assert (await ledger.claim(_claim(h, "req-1", 1), ttl_s=600)).won  # our own claim, re-sent
    with pytest.raises(AlreadyExists) as err:
        await ledger.claim(_claim(h, "req-1", 3, fingerprint="fp-other"), ttl_s=600)
    assert err.value.field == "request_id"
    with pytest.raises(FailedPrecondition):
        await ledger.claim(_claim(h, "req-2", 4, region=PEER), ttl_s=600)


async def test_idempotency_claims_expire(h: Harness) -> None:
    ledger = h.store.idempotency
    assert (await ledger.claim(_claim(h, "req-ttl", 1), ttl_s=1)).won
    await h.advance(2.5)
    assert (await ledger.claim(_claim(h, "req-ttl", 2, fingerprint="fp-new"), ttl_s=60)).won


async def _replicated(ledger: IdempotencyLedger, tenant: str, regions: list[str], count: int) -> None:
    """Claims reach other DCs in milliseconds, not at once: wait (bounded) until `count` are visible."""
    for _ in range(100):
        if len(await ledger.lookup(tenant, "req-x", regions)) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("claim never replicated")


async def test_idempotency_retry_in_another_region_finds_the_claim(h: Harness) -> None:
    local, peer, tenant = h.ledger_in(LOCAL), h.ledger_in(PEER), f"t{h.unique}"
    first = await local.claim(_claim(h, "req-x", 1), ttl_s=600)
    await _replicated(peer, tenant, [LOCAL], 1)
    retry = _claim(h, "req-x", 2, region=PEER)
    outcome = await peer.claim(retry, ttl_s=600, peer_regions=[LOCAL, PEER])
    assert not outcome.won and outcome.record == first.record
    # Without looking at peers (e.g. partitioned), the peer region claims its own scope; both are visible.
    assert (await peer.claim(retry, ttl_s=600)).won
    await _replicated(local, tenant, [PEER, LOCAL], 2)
    both = await local.lookup(tenant, "req-x", [PEER, LOCAL])
    assert [r.region for r in both] == [LOCAL, PEER]


async def test_idempotency_claim_moves_only_from_the_id_it_names(h: Harness) -> None:
    ledger, tenant = h.store.idempotency, f"t{h.unique}"
    first = (await ledger.claim(_claim(h, "req-move", 1), ttl_s=600)).record
    spilled = str(new_instance_id("cams", T0 + 5, 5))
    moved = await ledger.reassign(first, spilled, ttl_s=600)
    assert moved == replace(first, instance_id=spilled)
    # A second attempt that still thinks the claim names the first id loses, and learns the current one.
    other = str(new_instance_id("cnyc", T0 + 6, 6))
    assert await ledger.reassign(first, other, ttl_s=600) == moved
    assert await ledger.lookup(tenant, "req-move", [LOCAL]) == [moved]
    # A retry is answered with the moved claim.
    again = await ledger.claim(_claim(h, "req-move", 7), ttl_s=600)
    assert not again.won and again.record == moved
    with pytest.raises(FailedPrecondition):  # a claim moves only in its own region
        await ledger.reassign(replace(moved, region=PEER), first.instance_id, ttl_s=600)
    with pytest.raises(InvalidArgument):
        await ledger.reassign(moved, moved.instance_id, ttl_s=600)


async def test_idempotency_claim_that_expired_does_not_move(h: Harness) -> None:
    ledger = h.store.idempotency
    first = (await ledger.claim(_claim(h, "req-gone", 1), ttl_s=1)).record
    await h.advance(2.5)
    with pytest.raises(NotFound):
        await ledger.reassign(first, str(new_instance_id("cams", T0 + 5, 5)), ttl_s=1)


async def test_idempotency_reassert_fills_a_missing_claim_and_never_overrides_a_newer_one(h: Harness) -> None:
    ledger, tenant = h.store.idempotency, f"t{h.unique}"
    lost = _claim(h, "req-lost", 1, region=PEER)  # a peer region's claim this DC never received
    await ledger.reassert(lost, written_at_ms=lost.created_at_ms, ttl_s=600)
    assert await ledger.lookup(tenant, "req-lost", [PEER]) == [lost]
    # A claim moved since (newer write) is not undone by a late re-assert of its first state.
    # Claims are stamped by the claiming router's clock, which is the store's here.
    mine = replace(_claim(h, "req-kept", 2), created_at_ms=h.now_ms())
    mine = (await ledger.claim(mine, ttl_s=600)).record
    moved = await ledger.reassign(mine, str(new_instance_id("cams", T0 + 5, 5)), ttl_s=600)
    await ledger.reassert(mine, written_at_ms=mine.created_at_ms, ttl_s=600)
    assert await ledger.lookup(tenant, "req-kept", [LOCAL]) == [moved]
    with pytest.raises(InvalidArgument):
        await ledger.reassert(lost, written_at_ms=lost.created_at_ms, ttl_s=0)


async def _rotate(listing: TenantListing, live: list[ListingEntry], cells: set[str], at: int) -> None:
    """What each cell's re-assert sweep does: open a generation, put every live row again, commit."""
    for cell in sorted(cells):
        await listing.open_generation(cell, at_ms=at)
    for e in live:
        await listing.put(e)
    for cell in sorted(cells):
        tenants = sorted({e.tenant for e in live if e.owner_cell == cell})
        await listing.commit_generation(cell, tenants, at_ms=at + 1)


async def _listed(listing: TenantListing, tenant: str, order: ListOrder = ListOrder.CREATED_ASC) -> list[str]:
    got, _ = await _all_pages(listing, ListQuery(tenant, order, page_size=7))
    return [e.instance_id for e in got]


async def test_listing_generations_keep_live_rows_and_drop_deleted_ones(h: Harness) -> None:
    """Deletes, puts and renames before, during and after a generation rotation all read back right, in
    both orders, across two rotations (the second drops the generation that held the deletes)."""
    tenant, listing = f"t{h.unique}", h.store.listing
    entries = await _fill(h, tenant, 60)
    cells = {e.owner_cell for e in entries}
    for e in entries[:30]:
        await listing.delete(e, at_ms=e.updated_at_ms + 1)
    live = entries[30:]
    at = T0 + 200_000
    for cell in sorted(cells):
        await listing.open_generation(cell, at_ms=at)
    for e in live[:10]:  # the sweep's first part
        await listing.put(e)
    gone = live.pop()  # deleted mid-sweep
    await listing.delete(gone, at_ms=at + 5)
    renamed = ListingEntry(**{**live[-1].__dict__, "name": "aa-renamed", "updated_at_ms": at + 6})
    await listing.put(renamed, previous_name=live[-1].name)
    live[-1] = renamed
    late = _listing(tenant, 999, random.Random(99))  # made mid-sweep, after the cursor
    late = ListingEntry(**{**late.__dict__, "owner_cell": entries[0].owner_cell, "updated_at_ms": at + 7})
    await listing.put(late)
    live.append(late)
    expected = sorted(live, key=lambda e: sort_key(e, ListOrder.CREATED_ASC))
    assert await _listed(listing, tenant) == [e.instance_id for e in expected]  # mid-sweep: still right
    for e in live[10:]:
        await listing.put(e)
    for cell in sorted(cells):
        await listing.commit_generation(cell, [tenant], at_ms=at + 10)
    for order in (ListOrder.CREATED_ASC, ListOrder.NAME_DESC):
        want = [
            e.instance_id for e in sorted(live, key=lambda e: sort_key(e, order), reverse=order.descending)
        ]
        assert await _listed(listing, tenant, order) == want, order
    await _rotate(listing, live, cells, at + 20)
    assert await _listed(listing, tenant) == [e.instance_id for e in expected]
    by_name = await _listed(listing, tenant, ListOrder.NAME_ASC)
    assert by_name == [e.instance_id for e in sorted(live, key=lambda e: sort_key(e, ListOrder.NAME_ASC))]


async def test_listing_generation_survives_a_restarted_writer(h: Harness) -> None:
    """A cell that restarts mid-sweep (a fresh adapter) keeps writing where readers read, refills the
    generation it had opened, and commits it."""
    tenant, listing = f"t{h.unique}", h.store.listing
    entries = await _fill(h, tenant, 12)
    cells = {e.owner_cell for e in entries}
    for cell in sorted(cells):
        await listing.open_generation(cell, at_ms=T0 + 200_000)
    restarted = h.listing_with_budget(2000)  # a new adapter: its generations come from the store
    extra = ListingEntry(**{**_listing(tenant, 50, random.Random(3)).__dict__, "owner_cell": "cpar"})
    await restarted.put(extra)
    live = [*entries, extra]
    assert sorted(await _listed(restarted, tenant)) == sorted(e.instance_id for e in live)
    await _rotate(restarted, live, cells | {"cpar"}, T0 + 300_000)
    assert sorted(await _listed(listing, tenant)) == sorted(e.instance_id for e in live)


async def test_listing_footprint_forgets_a_tenant_that_left_a_cell(h: Harness) -> None:
    tenant, listing = f"t{h.unique}", h.store.listing
    entries = await _fill(h, tenant, 9)
    cell = entries[0].owner_cell
    mine = [e for e in entries if e.owner_cell == cell]
    for e in mine:
        await listing.delete(e, at_ms=e.updated_at_ms + 1)
    await listing.open_generation(cell, at_ms=T0 + 200_000)
    await listing.commit_generation(cell, [], at_ms=T0 + 200_001, gone=[tenant])
    rest = sorted(e.instance_id for e in entries if e.owner_cell != cell)
    assert sorted(await _listed(listing, tenant)) == rest
    back = ListingEntry(**{**mine[0].__dict__, "instance_id": str(new_instance_id(cell, T0, 77)),
                           "updated_at_ms": T0 + 200_002})  # fmt: skip
    await listing.put(back)  # the tenant's next instance there is listed again at once
    assert sorted(await _listed(listing, tenant)) == sorted([*rest, back.instance_id])
