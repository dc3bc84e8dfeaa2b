"""The Cell API servicer: decode, validate, call the controller, encode. Tenant isolation is enforced
here again (routers enforce it too): every instance call must name a tenant (an empty one is
INVALID_ARGUMENT, never "every tenant"), and another tenant's instance reads exactly like a missing one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from cellfed.v1 import cell_pb2, cell_pb2_grpc, common_pb2

from cell import host_admin
from cell import lifecycle as lc
from cell.controller import CellController
from cell.convert import instance_to_proto
from cell.records import ClaimRef, InstanceSpec
from cell.upkeep import capacity_summary
from cell.validation import (
    check_batch,
    check_build,
    check_instance_ref,
    check_names_this_cell,
    check_request_claim,
)
from fedlib.errors import InvalidArgument
from fedlib.names import check_tenant
from fedlib.networks import check_requested
from fedrpc.flavors import flavor_from_proto
from fedrpc.handlers import streaming, unary

_PAGE_MAX = 500


class CellServicer(cell_pb2_grpc.CellServiceServicer):
    def __init__(
        self, controller: CellController, on_drained: Callable[[bool], Awaitable[None]] | None = None
    ) -> None:
        self._c = controller
        self._on_drained = on_drained or _nothing

    def count_request(self, method: str, code: str, seconds: float) -> None:
        del seconds  # routers time what they forward (cellfed_router_forward_duration_seconds)
        self._c.metrics.requests.labels(self._c.settings.cell_id, method, code).inc()

    @unary()
    async def BuildInstance(
        self, request: cell_pb2.BuildInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        c = self._c
        labels = dict(request.labels)
        check_build(
            instance_id=request.instance_id, tenant=request.tenant,
            display_name=request.display_name, image=request.image, user_data=request.user_data,
            labels=labels, spread_group=request.spread_group,
        )  # fmt: skip
        check_names_this_cell(request.instance_id, c.settings.cell_id)
        if not request.HasField("flavor"):
            raise InvalidArgument("flavor is required", field="flavor")
        claim = None
        if request.HasField("claim"):
            cl = request.claim
            check_request_claim(
                request_id=request.request_id, region=cl.region, created_at_ms=cl.created_at_ms,
                fingerprint=cl.fingerprint, assigned_at_ms=cl.assigned_at_ms, expires_at_ms=cl.expires_at_ms,
            )  # fmt: skip
            claim = ClaimRef(cl.region, cl.created_at_ms, cl.fingerprint, cl.assigned_at_ms, cl.expires_at_ms)
        spec = InstanceSpec(
            instance_id=request.instance_id,
            tenant=request.tenant,
            display_name=request.display_name,
            flavor=flavor_from_proto(request.flavor),
            image=request.image,
            created_ms=c.now_ms(),
            user_data=request.user_data,
            labels=labels,
            request_id=request.request_id,
            spread_group=request.spread_group,
            claim=claim,
            networks=check_requested(list(request.networks)),
        )
        return instance_to_proto(c, await c.build(spec))

    @unary()
    async def GetInstance(
        self, request: cell_pb2.CellInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        check_instance_ref(request.instance_id, request.tenant)
        return instance_to_proto(self._c, self._c.find(request.instance_id, request.tenant))

    @unary()
    async def BatchGetInstances(
        self, request: cell_pb2.BatchGetInstancesRequest, context: grpc.aio.ServicerContext
    ) -> cell_pb2.BatchGetInstancesResponse:
        ids = list(request.instance_ids)
        check_tenant(request.tenant)
        check_batch(ids)
        out = cell_pb2.BatchGetInstancesResponse()
        for iid in ids:
            inst = self._c.core.get(iid)
            if inst is None or inst.spec.tenant != request.tenant:
                out.missing_ids.append(iid)
            else:
                out.instances.append(instance_to_proto(self._c, inst))
        return out

    @unary()
    async def ListInstances(
        self, request: cell_pb2.CellListInstancesRequest, context: grpc.aio.ServicerContext
    ) -> cell_pb2.CellListInstancesResponse:
        check_tenant(request.tenant)
        size = request.page_size or 100
        if not 1 <= size <= _PAGE_MAX:
            raise InvalidArgument(f"page_size must be 1-{_PAGE_MAX}", field="page_size")
        after, host, group = request.page_token, request.host, request.spread_group
        items = [
            i
            for i in self._c.instances_of(request.tenant)
            if i.spec.instance_id > after
            and (not host or i.record.host_id == host)
            and (not group or (i.spec.spread_group == group and i.record.state is not lc.State.DELETED))
        ]
        page = items[:size]
        out = cell_pb2.CellListInstancesResponse(instances=[instance_to_proto(self._c, i) for i in page])
        if len(items) > size:
            out.next_page_token = page[-1].spec.instance_id  # ids are opaque to callers; keyset paging
        return out

    async def _act(self, request: cell_pb2.CellInstanceRequest, event: lc.Event) -> common_pb2.Instance:
        check_instance_ref(request.instance_id, request.tenant)
        return instance_to_proto(self._c, await self._c.request(request.instance_id, request.tenant, event))

    @unary()
    async def DeleteInstance(
        self, request: cell_pb2.CellInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return await self._act(request, lc.Delete())

    @unary()
    async def StartInstance(
        self, request: cell_pb2.CellInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return await self._act(request, lc.Start())

    @unary()
    async def StopInstance(
        self, request: cell_pb2.CellInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return await self._act(request, lc.Stop())

    @unary()
    async def RebootInstance(
        self, request: cell_pb2.CellInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return await self._act(request, lc.Reboot())

    @streaming()
    async def WatchInstance(
        self, request: cell_pb2.CellInstanceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.InstanceEvent]:
        check_instance_ref(request.instance_id, request.tenant)
        async for inst, reason in self._c.watch(request.instance_id, request.tenant):
            event = common_pb2.InstanceEvent(instance=instance_to_proto(self._c, inst), reason=reason)
            event.event_time.FromMilliseconds(inst.record.updated_ms)
            yield event

    @unary()
    async def GetCellStatus(
        self, request: cell_pb2.GetCellStatusRequest, context: grpc.aio.ServicerContext
    ) -> cell_pb2.CellStatus:
        return self._status()

    @unary()
    async def SetCellDrained(
        self, request: cell_pb2.SetCellDrainedRequest, context: grpc.aio.ServicerContext
    ) -> cell_pb2.CellStatus:
        previous, self._c.drained = self._c.drained, request.drained
        # Routers learn it from the directory (their next refresh): they stop offering the cell. If the
        # row cannot be written (the cell's DC down), the drain is refused and undone here too: the caller
        # is told it failed, so the cell must not stay drained behind its back. (Had the write landed after
        # all, the directory re-assert puts back the state kept here within its period.)
        try:
            await self._on_drained(request.drained)
        except Exception:
            self._c.drained = previous
            raise
        return self._status()

    # -- host operations (cell.host_admin) ------------------------------------------------------------
    @unary()
    async def ListHosts(
        self, request: cell_pb2.ListCellHostsRequest, context: grpc.aio.ServicerContext
    ) -> cell_pb2.ListCellHostsResponse:
        return host_admin.list_hosts(self._c)

    @unary()
    async def SetHostDisabled(
        self, request: cell_pb2.SetHostDisabledRequest, context: grpc.aio.ServicerContext
    ) -> cell_pb2.HostDetail:
        return await host_admin.set_disabled(self._c, request)

    @unary()
    async def EvacuateHost(
        self, request: cell_pb2.CellEvacuateHostRequest, context: grpc.aio.ServicerContext
    ) -> cell_pb2.CellEvacuateHostResponse:
        return await host_admin.evacuate(self._c, request)

    def _status(self) -> cell_pb2.CellStatus:
        c = self._c
        s = capacity_summary(c)
        out = cell_pb2.CellStatus(
            cell=c.settings.cell_id, site=c.settings.site_id, region=c.settings.region, drained=c.drained,
            health=_health(c.drained, s.hosts_up),
            capacity=common_pb2.Capacity(
                vcpus_total=s.vcpus_total, vcpus_free=s.vcpus_free, memory_mb_total=s.mem_mb_total,
                memory_mb_free=s.mem_mb_free, disk_gb_total=s.disk_gb_total, disk_gb_free=s.disk_gb_free,
                hosts_up=s.hosts_up, hosts_total=len(c.core.hosts.all()), instances=s.instances,
            ),
        )  # fmt: skip
        now = c.now_ms()
        for h in c.core.hosts.all():
            host = out.hosts.add(host=h.host_id, up=c.core.hosts.is_up(h.host_id, now), disabled=h.disabled,
                                 libvirt_uri=h.libvirt_uri)  # fmt: skip
            if h.last_seen_ms is not None:
                host.last_heartbeat.FromMilliseconds(h.last_seen_ms)
        for inst in c.core.all_instances():
            status = c.observed(inst).status.value
            out.instances_by_status[status] = out.instances_by_status[status] + 1
        out.observed_at.FromMilliseconds(now)
        return out


def _health(drained: bool, hosts_up: int) -> common_pb2.Health.ValueType:
    if drained:
        return common_pb2.DRAINED
    return common_pb2.HEALTHY if hosts_up else common_pb2.DEGRADED


async def _nothing(drained: bool) -> None:
    del drained
