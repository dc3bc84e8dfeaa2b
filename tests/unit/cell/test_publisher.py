"""The publisher's re-assert queue over the in-memory store: changes go first, a re-assert never rolls a
row back, and what it writes is counted."""

from __future__ import annotations

import asyncio

import pytest

from cell.lifecycle import Instance, State
from cell.publisher import Publisher, reassert_bytes
from cell.records import CellInstance, InstanceSpec
from fedlib.catalog import FLAVORS
from fedlib.errors import NotFound
from fedlib.ids import new_instance_id
from replication.memory import ManualClock, MemoryStore
from replication.paging import ListQuery

T0 = 1_750_000_000_000


def _inst(n: int, state: State, updated_ms: int, version: int = 1) -> CellInstance:
    iid = str(new_instance_id("c1", T0 + n, n))
    spec = InstanceSpec(iid, "acme", f"vm-{n}", FLAVORS["m1.small"], "debian-12", T0 + n)
    return CellInstance(spec, Instance(iid, "h1", state, version, updated_ms), holds_claim=True)


async def _running(
    store: MemoryStore, counted: list[tuple[int, int]]
) -> tuple[Publisher, asyncio.Task[None]]:
    publisher = Publisher(
        cell_id="c1", site_id="s1", index=store.index, listing=store.listing, capacity=store.capacity,
        on_reassert=lambda rows, size: counted.append((rows, size)),
    )  # fmt: skip
    return publisher, asyncio.create_task(publisher.run())


async def test_a_reassert_restores_a_lost_row_and_never_rolls_back_a_newer_one() -> None:
    store, counted = MemoryStore(ManualClock().now_ms, region="r1"), []
    publisher, task = await _running(store, counted)
    try:
        old = _inst(1, State.ACTIVE, T0 + 10)
        publisher.reassert(old)  # the index never had it (a lost write): the re-assert restores it
        assert await publisher.drained(2.0)
        assert (await store.index.get(old.spec.instance_id)).status == "ACTIVE"
        newer = _inst(1, State.STOPPED, T0 + 20, version=2)
        publisher.instance_changed(newer)
        assert await publisher.drained(2.0)
        publisher.reassert(old)  # a stale snapshot, re-asserted late: its older timestamp loses
        assert await publisher.drained(2.0)
        assert (await store.index.get(old.spec.instance_id)).status == "STOPPED"
        page = await store.listing.list(ListQuery("acme"))
        assert [e.status for e in page.entries] == ["STOPPED"]
        assert counted == [(5, reassert_bytes_of(old))] * 2
    finally:
        task.cancel()


def reassert_bytes_of(inst: CellInstance) -> int:
    from replication.model import ListingEntry

    s, r = inst.spec, inst.record
    return reassert_bytes(
        ListingEntry(
            "acme",
            s.instance_id,
            s.display_name,
            s.created_ms,
            "c1",
            "s1",
            s.flavor.name,
            r.state,
            r.updated_ms,
        )
    )


async def test_changes_are_served_before_queued_reasserts() -> None:
    store, counted = MemoryStore(ManualClock().now_ms, region="r1"), []
    publisher = Publisher(
        cell_id="c1", site_id="s1", index=store.index, listing=store.listing, capacity=store.capacity,
        on_reassert=lambda rows, size: counted.append((rows, size)),
    )  # fmt: skip
    order: list[str] = []
    put = store.index.put

    async def recording(entry):  # type: ignore[no-untyped-def]
        order.append(entry.name)
        await put(entry)

    store.index.put = recording  # type: ignore[method-assign]
    for n in range(5):
        publisher.reassert(_inst(n, State.ACTIVE, T0))
    publisher.instance_changed(_inst(9, State.ACTIVE, T0))
    task = asyncio.create_task(publisher.run())
    try:
        assert await publisher.drained(2.0)
        assert order[0] == "vm-9" and sorted(order[1:]) == [f"vm-{n}" for n in range(5)]
        assert publisher.backlog == 0
    finally:
        task.cancel()


async def test_a_deleted_instance_is_not_reasserted() -> None:
    store, counted = MemoryStore(ManualClock().now_ms, region="r1"), []
    publisher, task = await _running(store, counted)
    try:
        gone = _inst(3, State.DELETED, T0 + 5)
        publisher.reassert(gone)
        assert await publisher.drained(2.0)
        with pytest.raises(NotFound):
            await store.index.get(gone.spec.instance_id)
        assert counted == []
    finally:
        task.cancel()
