"""Get, delete, start, stop, reboot and watch: forwarded to the owning cell with a deadline.

Owner unreachable: a get answers from the index with status UNKNOWN, stale, and the age of the data; a
mutation fails UNAVAILABLE naming the site. Tenant isolation: the cell checks the tenant again, and an
index row of another tenant reads exactly like a missing instance."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from cellfed.v1 import cell_pb2, common_pb2

from cellapi.router.cell_clients import CellClients
from cellapi.router.owners import Owners
from cellapi.router.settings import RouterSettings
from fedlib.errors import DeadlineExceeded, NotFound, Unavailable
from fedlib.ids import InstanceId
from fedrpc.addresses import address_to_proto
from fedrpc.status import error_from_rpc
from replication.model import IndexEntry


class InstanceOps:
    def __init__(
        self,
        settings: RouterSettings,
        owners: Owners,
        cells: CellClients,
        observe: Callable[[str, str, str, float], None],
        clock_ms: Callable[[], int],
    ) -> None:
        self._settings, self._owners, self._cells = settings, owners, cells
        self._observe, self._now = observe, clock_ms

    async def call(self, iid: InstanceId, tenant: str, method: str) -> common_pb2.Instance:
        """Forwards to the owner; a home cell that does not know the id sends us to the index."""
        request = cell_pb2.CellInstanceRequest(instance_id=str(iid), tenant=tenant)
        asked: str | None = None
        try:
            first = self._owners.first_guess(iid)
            asked = first.cell_id
            return await self._forward(first, method, request)
        except NotFound:
            owner, _ = await self._owners.from_index(iid)
            if owner is None or owner.cell_id == asked:
                raise NotFound(f"instance {iid} not found", field="name") from None
            return await self._forward(owner, method, request)

    async def get(self, iid: InstanceId, tenant: str) -> common_pb2.Instance:
        try:
            return await self.call(iid, tenant, "GetInstance")
        except (Unavailable, DeadlineExceeded):
            return await self._from_index(iid, tenant)

    async def _from_index(self, iid: InstanceId, tenant: str) -> common_pb2.Instance:
        # Another tenant's row reads exactly like no row: a NOT_FOUND here, beside UNAVAILABLE for ids that
        # exist nowhere, would tell a caller which ids are real while their cell is down.
        unknown = Unavailable(
            f"the owner of instance {iid} (cell {iid.home_cell}) is unreachable and the index has no row "
            "for it; try again later"
        )
        try:
            owner, entry = await self._owners.from_index(iid)
        except NotFound:
            raise unknown from None
        if entry.tenant != tenant:
            raise unknown
        return index_to_instance(entry, self._now(), stale=True, site=owner.site_id if owner else "")

    async def _forward(self, cell: Any, method: str, request: Any) -> common_pb2.Instance:
        started, code = time.perf_counter(), "OK"
        try:
            result: common_pb2.Instance = await self._cells.call(
                cell, method, request, self._settings.cell_timeout_s
            )
            return result
        except Exception as exc:
            code = type(exc).__name__
            raise
        finally:
            self._observe(cell.site_id, method, code, time.perf_counter() - started)

    async def watch(
        self, iid: InstanceId, tenant: str, timeout_s: float
    ) -> AsyncIterator[common_pb2.InstanceEvent]:
        request = cell_pb2.CellInstanceRequest(instance_id=str(iid), tenant=tenant)
        try:
            cell = self._owners.first_guess(iid)
        except NotFound:
            found, _ = await self._owners.from_index(iid)
            if found is None:
                raise
            cell = found
        call = self._cells.stub(cell).WatchInstance(request, timeout=timeout_s)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
                raise error_from_rpc(exc, target=f"site {cell.site_id} (cell {cell.cell_id})") from None


def index_to_instance(entry: IndexEntry, now_ms: int, *, stale: bool, site: str) -> common_pb2.Instance:
    """An instance as the index knows it. Stale answers say UNKNOWN and how old the data is."""
    status = common_pb2.UNKNOWN if stale else getattr(common_pb2, entry.status.value)
    out = common_pb2.Instance(
        name=f"instances/{entry.instance_id}",
        instance_id=entry.instance_id,
        tenant=entry.tenant,
        display_name=entry.name,
        flavor=entry.flavor,
        status=status,
        cell=entry.owner_cell,
        site=site,
        stale=stale,
    )
    out.addresses.extend(address_to_proto(a) for a in entry.addresses)
    out.create_time.FromMilliseconds(entry.created_at_ms)
    out.update_time.FromMilliseconds(entry.updated_at_ms)
    if stale:
        out.data_age.FromMilliseconds(max(0, now_ms - entry.updated_at_ms))
    return out
