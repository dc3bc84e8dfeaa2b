"""Publishes the cell's thin global state (index rows, tenant listing rows, the capacity summary) to the
global keyspace at LOCAL_QUORUM, off the request path.

The cell's keyspace is the truth; these rows are a projection. A failed publish is retried with backoff
and, because only the newest state per instance is kept in the queue, a burst of changes costs one write
each. A full republish runs at start so a crash between persisting and publishing loses nothing.

Re-asserts (cell.reassert's paced sweep) wait in a queue of their own that is served only when no change
is waiting, so a sweep never delays a user's change; a re-assert carries the owner's timestamps, so one
that lands after a newer change loses to it. A re-assert is written once: a failure is counted and the
next sweep tries again. While a sweep runs, the listing writes each row into two generations (the one
readers read and the one being filled), so a re-assert is 5 rows: the index row and 2 x 2 listing rows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from cell.lifecycle import State
from cell.records import CellInstance, nic_addresses
from fedlib.networks import ProviderNetwork
from replication.model import CapacitySummary, IndexEntry, ListingEntry
from replication.store import CapacityBoard, InstanceIndex, TenantListing

log = logging.getLogger(__name__)

_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class Publisher:
    def __init__(
        self,
        *,
        cell_id: str,
        site_id: str,
        index: InstanceIndex,
        listing: TenantListing,
        capacity: CapacityBoard,
        networks: Sequence[ProviderNetwork] = (),
        on_error: Callable[[str], None] = lambda what: None,
        on_reassert: Callable[[int, int], None] = lambda rows, size: None,
    ) -> None:
        self._cell_id, self._site_id = cell_id, site_id
        self._networks = tuple(networks)  # to give the index each NIC's IPv6 (derived from its MAC)
        self._index, self._listing, self._capacity = index, listing, capacity
        self._on_error, self._on_reassert = on_error, on_reassert
        self._latest: dict[str, CellInstance] = {}
        self._reasserts: dict[str, CellInstance] = {}
        self._reassert_in_flight = False
        self.reassert_failures = 0  # the sweep commits a listing generation only if none failed meanwhile
        self.deletes_published = 0  # listing tombstones written: many start the next sweep early
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def instance_changed(self, inst: CellInstance) -> None:
        self._latest[inst.spec.instance_id] = inst
        self._idle.clear()
        self._wake.set()

    def reassert(self, inst: CellInstance) -> None:
        """Write this instance's rows again (same rows, same timestamps), after any queued change."""
        self._reasserts[inst.spec.instance_id] = inst
        self._idle.clear()
        self._wake.set()

    @property
    def backlog(self) -> int:
        """Re-asserts not yet written (queued or in flight): the sweep holds back while they pile up."""
        return len(self._reasserts) + self._reassert_in_flight

    async def publish_capacity(self, summary: CapacitySummary) -> None:
        try:
            await self._capacity.publish(summary)
        except Exception as exc:  # the next periodic publish retries; never fail the caller
            self._on_error("capacity")
            log.warning("capacity publish failed: %s", exc)

    async def drained(self, timeout_s: float) -> bool:
        """Waits until every queued change is published (tests and graceful stop)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._latest or self._reasserts:
                if self._latest:  # changes first, always
                    instance_id, inst = next(iter(self._latest.items()))
                    del self._latest[instance_id]
                    await self._publish_with_retry(inst)
                    continue
                instance_id, inst = next(iter(self._reasserts.items()))
                del self._reasserts[instance_id]
                self._reassert_in_flight = True
                try:
                    await self._reassert_once(inst)
                finally:
                    self._reassert_in_flight = False
            self._idle.set()

    async def _reassert_once(self, inst: CellInstance) -> None:
        if inst.record.state is State.DELETED:  # deleted since the sweep picked it: its delete was published
            return
        try:
            await self._publish(inst)
        except Exception as exc:
            self._on_error("reassert")
            self.reassert_failures += 1
            log.warning("re-assert of %s failed (the next sweep retries): %s", inst.spec.instance_id, exc)
            return
        self._on_reassert(REASSERT_ROWS, reassert_bytes(self._listing_entry(inst)))

    async def _publish_with_retry(self, inst: CellInstance) -> None:
        for attempt, delay in enumerate((*_RETRY_S, None)):
            try:
                await self._publish(inst)
                return
            except Exception as exc:
                self._on_error("index")
                if delay is None or instance_newer_queued(self._latest, inst):
                    log.warning(
                        "giving up publishing %s after %d tries: %s", inst.spec.instance_id, attempt + 1, exc
                    )
                    if delay is None:  # keep it for the next pass rather than lose it
                        self._latest.setdefault(inst.spec.instance_id, inst)
                        await asyncio.sleep(_RETRY_S[-1])
                    return
                await asyncio.sleep(delay)

    def _listing_entry(self, inst: CellInstance) -> ListingEntry:
        spec, rec = inst.spec, inst.record
        return ListingEntry(
            tenant=spec.tenant,
            instance_id=spec.instance_id,
            name=spec.display_name,
            created_at_ms=spec.created_ms,
            owner_cell=self._cell_id,
            site_id=self._site_id,
            flavor=spec.flavor.name,
            status=rec.state,  # one status type for the cell and the store (fedlib.states)
            updated_at_ms=rec.updated_ms,
            addresses=nic_addresses(inst.ports, self._networks),
        )

    async def _publish(self, inst: CellInstance) -> None:
        spec, rec = inst.spec, inst.record
        status = rec.state
        listing = self._listing_entry(inst)
        if rec.state is State.DELETED:
            await self._listing.delete(listing, at_ms=rec.updated_ms)
            self.deletes_published += 1
            await self._index.delete(spec.instance_id, at_ms=rec.updated_ms)
            return
        await self._index.put(
            IndexEntry(
                instance_id=spec.instance_id,
                home_cell=spec.instance_id.rpartition(".")[0],
                owner_cell=self._cell_id,
                tenant=spec.tenant,
                name=spec.display_name,
                flavor=spec.flavor.name,
                status=status,
                created_at_ms=spec.created_ms,
                updated_at_ms=rec.updated_ms,
                addresses=listing.addresses,
            )
        )
        await self._listing.put(listing)


def instance_newer_queued(queue: dict[str, CellInstance], inst: CellInstance) -> bool:
    """A newer state of the same instance is waiting: publishing this one is pointless."""
    newer = queue.get(inst.spec.instance_id)
    return newer is not None and newer.record.version > inst.record.version


REASSERT_ROWS = 5  # the index row, and both listing orders in two generations


def reassert_bytes(entry: ListingEntry) -> int:
    """The payload of one re-assert: the index row and four listing rows, values only (text as UTF-8,
    8 bytes per bigint and per timestamp). Protocol framing and Cassandra's own overhead come on top."""
    texts = (entry.instance_id, entry.tenant, entry.name, entry.owner_cell, entry.flavor, entry.status.value)
    text = sum(len(t.encode()) for t in texts)
    home_cell = len(entry.instance_id.rpartition(".")[0].encode())
    index_row = text + home_cell + 3 * 8  # created_at, updated_at, write timestamp
    listing_row = text + len(entry.site_id.encode()) + 3 * 8
    return index_row + 4 * listing_row
