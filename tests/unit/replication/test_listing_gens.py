"""The listing generations' bookkeeping (replication.listing_gens) and what the twin keeps of it: a
generation is read until the next commit and dropped whole at the one after, so tombstones do not pile up."""

from __future__ import annotations

import random

from fedlib.ids import new_instance_id
from replication.listing_gens import Generations, drop_ts_us, footprint_ts_us
from replication.memory import ManualClock, MemoryListing
from replication.model import InstanceStatus, ListingEntry
from replication.paging import ListQuery

T0 = 1_750_000_000_000


def test_open_commit_retire_and_drop() -> None:
    g = Generations()
    assert g.written == (1,)
    g = g.open(T0)
    assert g.written == (1, T0) and g.open(T0 + 5) == g  # a crashed sweep's opening is refilled, not replaced
    g, drop = g.commit()
    assert (g.current, g.opening, g.retired, drop) == (T0, None, 1, None)
    g, drop = g.open(T0 + 10).commit()
    assert (g.current, g.retired, drop) == (T0 + 10, T0, 1)  # the generation two back goes
    assert Generations(current=T0).open(T0 - 99).opening == T0 + 1  # a clock that went back still advances
    assert Generations().commit() == (Generations(), None)


def test_timestamps_order_generations() -> None:
    assert footprint_ts_us(T0 + 1) > footprint_ts_us(T0)
    assert footprint_ts_us(T0) - 1 < footprint_ts_us(T0)  # a removal loses to the same generation's put
    assert drop_ts_us(T0) > (T0 + 3_600_000) * 1000  # above any row written before the commit


def _entry(n: int) -> ListingEntry:
    iid = str(new_instance_id("c1", T0 + n, n))
    return ListingEntry("acme", iid, f"vm-{n}", T0 + n, "c1", "s1", "m1-small", InstanceStatus.ACTIVE, T0 + n)


async def test_churn_leaves_no_tombstones_where_readers_read_after_two_rotations() -> None:
    rng = random.Random(3)
    listing = MemoryListing(ManualClock().now_ms)
    entries = [_entry(n) for n in range(500)]
    for e in entries:
        await listing.put(e)
    doomed = set(rng.sample(range(500), 450))
    for n in sorted(doomed):
        await listing.delete(entries[n], at_ms=T0 + 1000 + n)
    assert listing.tombstones_of("acme") == 2 * 450  # both orders
    live = [e for n, e in enumerate(entries) if n not in doomed]
    for k in range(2):
        await listing.open_generation("c1", at_ms=T0 + 10_000 * (k + 1))
        for e in live:
            await listing.put(e)
        await listing.commit_generation("c1", ["acme"], at_ms=T0 + 10_000 * (k + 1) + 1)
        assert listing.tombstones_of("acme") == 0  # readers read the fresh generation at once
    assert listing.partitions_holding("acme") == 2  # current and retired; the first was dropped whole
    page = await listing.list(ListQuery("acme", page_size=100))
    assert [e.instance_id for e in page.entries] == [e.instance_id for e in live]
