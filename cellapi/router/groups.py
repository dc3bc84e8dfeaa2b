"""Which sites already hold a member of a tenant's spread group: asked of every reachable cell at once,
within one deadline (cellapi.router.scatter; cells own their instances, the global keyspace does not index
groups). A cell that does not answer in time counts as holding none: spreading is best effort, never a
reason to fail. What this router placed itself is remembered too (bounded), so a slow cell cannot make it
forget the members it just placed."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from cellfed.v1 import cell_pb2

from cellapi.router.cell_clients import CellClients
from cellapi.router.directory import Directory
from cellapi.router.scatter import scatter_gather

_REMEMBERED_GROUPS = 10_000


class GroupSites:
    def __init__(
        self, directory: Directory, cells: CellClients, reachable: Callable[[str], bool], timeout_s: float
    ) -> None:
        self._directory, self._cells = directory, cells
        self._reachable, self._timeout_s = reachable, timeout_s
        self._placed: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()

    def remember(self, tenant: str, group: str, site: str) -> None:
        key = (tenant, group)
        self._placed[key] = self._placed.get(key, frozenset()) | {site}
        self._placed.move_to_end(key)
        while len(self._placed) > _REMEMBERED_GROUPS:
            self._placed.popitem(last=False)

    async def holding(self, tenant: str, group: str) -> frozenset[str]:
        request = cell_pb2.CellListInstancesRequest(tenant=tenant, spread_group=group, page_size=1)
        gathered = await scatter_gather(
            self._directory.snapshot.cells.values(),
            lambda cell: self._cells.call(cell, "ListInstances", request, self._timeout_s),
            timeout_s=self._timeout_s,
            is_up=self._reachable,
        )
        sites = {a.cell.site_id for a in gathered.answers() if a.result.instances}
        return frozenset(sites) | self._placed.get((tenant, group), frozenset())
