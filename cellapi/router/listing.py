"""Listing across cells: served from the tenant listing table in this router's DC (sorted, filtered,
keyset-paged: page N costs what page 2 costs), then enriched live from the owning cells, all at once
within one deadline (cellapi.router.scatter). A cell that does not answer in time (or that the prober
already knows is down) never delays the page: its entries come back stale, UNKNOWN with their data's
age, and the response names it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from cellfed.v1 import cell_pb2, common_pb2, compute_pb2

from cellapi.router.cell_clients import CellClients
from cellapi.router.directory import Directory
from cellapi.router.instances import index_to_instance
from cellapi.router.scatter import scatter_gather
from replication.model import IndexEntry, ListingEntry
from replication.paging import ListQuery
from replication.store import TenantListing


class Lister:
    def __init__(
        self,
        listing: TenantListing,
        directory: Directory,
        cells: CellClients,
        is_reachable: Callable[[str], bool],
        timeout_s: float,
        clock_ms: Callable[[], int],
        on_unreachable: Callable[[str], None],
    ) -> None:
        self._listing, self._directory, self._cells = listing, directory, cells
        self._reachable, self._timeout_s, self._now = is_reachable, timeout_s, clock_ms
        self._on_unreachable = on_unreachable

    async def page(self, query: ListQuery, enrich: bool) -> compute_pb2.ListInstancesResponse:
        page = await self._listing.list(query)
        out = compute_pb2.ListInstancesResponse(next_page_token=page.next_token or "")
        live: dict[str, common_pb2.Instance] = {}
        unreachable: list[str] = []
        if enrich and page.entries:
            live, unreachable = await self._enrich(query.tenant, page.entries)
        now = self._now()
        for entry in page.entries:
            got = live.get(entry.instance_id)
            if got is None:
                stale = entry.owner_cell in unreachable
                got = index_to_instance(_as_index(entry), now, stale=stale, site=entry.site_id)
            out.instances.append(got)
        out.unreachable_cells.extend(sorted(unreachable))
        return out

    async def _enrich(
        self, tenant: str, entries: tuple[ListingEntry, ...]
    ) -> tuple[dict[str, common_pb2.Instance], list[str]]:
        by_cell: dict[str, list[str]] = defaultdict(list)
        for e in entries:
            by_cell[e.owner_cell].append(e.instance_id)
        cells = self._directory.snapshot.cells
        gathered = await scatter_gather(
            (cells[c] for c in by_cell if c in cells),
            lambda cell: self._cells.call(
                cell,
                "BatchGetInstances",
                cell_pb2.BatchGetInstancesRequest(tenant=tenant, instance_ids=by_cell[cell.cell_id]),
                self._timeout_s,
            ),
            timeout_s=self._timeout_s,
            is_up=self._reachable,
        )
        live = {i.instance_id: i for a in gathered.answers() for i in a.result.instances}
        unreachable = [c for c in by_cell if c not in cells] + [c.cell_id for c in gathered.missing()]
        for cell_id in unreachable:
            self._on_unreachable(self._directory.snapshot.cell_site(cell_id))
        return live, unreachable


def _as_index(e: ListingEntry) -> IndexEntry:
    return IndexEntry(
        instance_id=e.instance_id,
        home_cell=e.instance_id.rpartition(".")[0],
        owner_cell=e.owner_cell,
        tenant=e.tenant,
        name=e.name,
        flavor=e.flavor,
        status=e.status,
        created_at_ms=e.created_at_ms,
        updated_at_ms=e.updated_at_ms,
        addresses=e.addresses,
    )
