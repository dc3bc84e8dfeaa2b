"""The public Compute API servicer: authenticate (the interceptor put the caller's claims in context),
validate, route, encode. Tenant comes from the token, never from the request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

import grpc
from cellfed.v1 import common_pb2, compute_pb2, compute_pb2_grpc
from google.protobuf import empty_pb2

from cellapi.auth import current_claims
from cellapi.router import requests as rq
from cellapi.router.create import Creator
from cellapi.router.instances import InstanceOps
from cellapi.router.listing import Lister
from cellapi.router.settings import RouterSettings
from fedlib.flavor import Flavor
from fedrpc.handlers import streaming, unary
from replication.model import Cell
from replication.paging import ListQuery

# A watch lives at most this long per call; clients reconnect (every remote call has a deadline).
WATCH_MAX_S = 3600.0


class Placement(Protocol):
    def candidates(
        self,
        flavor: Flavor,
        hint: common_pb2.PlacementHint,
        from_site: str,
        group_sites: frozenset[str] = frozenset(),
        networks: tuple[str, ...] = (),
    ) -> tuple[list[Cell], str, bool]: ...


class Groups(Protocol):
    async def holding(self, tenant: str, group: str) -> frozenset[str]: ...
    def remember(self, tenant: str, group: str, site: str) -> None: ...


class ComputeServicer(compute_pb2_grpc.ComputeServiceServicer):
    def __init__(
        self,
        settings: RouterSettings,
        placement: Placement,
        creator: Creator,
        ops: InstanceOps,
        lister: Lister,
        count: rq.Counter,
        groups: Groups,
        networks: Callable[[], compute_pb2.ListNetworksResponse],
    ) -> None:
        self._settings, self._placement, self._creator = settings, placement, creator
        self._ops, self._lister, self.count_request, self._groups = ops, lister, count, groups
        self._networks = networks

    @unary()
    async def CreateInstance(
        self, request: compute_pb2.CreateInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        tenant = current_claims().tenant
        flavor = rq.check_create(request)
        group = request.placement.spread_group
        held = await self._groups.holding(tenant, group) if group else frozenset()
        candidates, why, transient = self._placement.candidates(
            flavor, request.placement, self._settings.site_id, held, tuple(request.networks)
        )
        created = await self._creator.create(
            tenant, request, flavor, rq.fingerprint(request), candidates, why, transient=transient
        )
        if group:
            self._groups.remember(tenant, group, created.site)
        return _as_read_by(created)

    @unary()
    async def GetInstance(
        self, request: compute_pb2.GetInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return _as_read_by(await self._ops.get(rq.instance_name(request.name), current_claims().tenant))

    @unary()
    async def ListInstances(
        self, request: compute_pb2.ListInstancesRequest, context: grpc.aio.ServicerContext
    ) -> compute_pb2.ListInstancesResponse:
        query = ListQuery(
            tenant=current_claims().tenant,
            order=rq.list_order(request.order_by),
            filter=rq.list_filter(request.filter),
            page_size=rq.page_size(request.page_size),
            page_token=request.page_token or None,
        )
        page = await self._lister.page(query, enrich=not request.skip_enrichment)
        for inst in page.instances:
            _as_read_by(inst)
        return page

    @unary()
    async def DeleteInstance(
        self, request: compute_pb2.DeleteInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return _as_read_by(
            await self._ops.call(rq.instance_name(request.name), current_claims().tenant, "DeleteInstance")
        )

    @unary()
    async def StartInstance(
        self, request: compute_pb2.InstanceActionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return _as_read_by(
            await self._ops.call(rq.instance_name(request.name), current_claims().tenant, "StartInstance")
        )

    @unary()
    async def StopInstance(
        self, request: compute_pb2.InstanceActionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return _as_read_by(
            await self._ops.call(rq.instance_name(request.name), current_claims().tenant, "StopInstance")
        )

    @unary()
    async def RebootInstance(
        self, request: compute_pb2.InstanceActionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return _as_read_by(
            await self._ops.call(rq.instance_name(request.name), current_claims().tenant, "RebootInstance")
        )

    @streaming()
    async def WatchInstance(
        self, request: compute_pb2.WatchInstanceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.InstanceEvent]:
        iid = rq.instance_name(request.name)
        remaining = context.time_remaining()
        timeout = min(WATCH_MAX_S, remaining) if remaining is not None else WATCH_MAX_S
        async for event in self._ops.watch(iid, current_claims().tenant, timeout):
            _as_read_by(event.instance)
            yield event

    @unary()
    async def WhoAmI(
        self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> compute_pb2.WhoAmIResponse:
        claims = current_claims()
        return compute_pb2.WhoAmIResponse(
            tenant=claims.tenant,
            roles=sorted(claims.roles),
            router_site=self._settings.site_id,
            router_id=self._settings.router_id,
        )

    @unary()
    async def ListNetworks(
        self, request: compute_pb2.ListNetworksRequest, context: grpc.aio.ServicerContext
    ) -> compute_pb2.ListNetworksResponse:
        return self._networks()


def _as_read_by(inst: common_pb2.Instance) -> common_pb2.Instance:
    """Operator-only fields withheld from a reader without the admin role (common.proto's promise): which
    compute host runs a guest tells a tenant about co-tenancy and the site's layout."""
    if not current_claims().is_admin:
        inst.ClearField("host")
    return inst
