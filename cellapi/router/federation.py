"""The operator Federation API: what this router knows of every site (directory rows, capacity summaries,
its own probes), each with the age of the data; placement explanations; drain; the RTT matrix (its own
row, plus every peer router's row fetched within a deadline). Sites that do not answer are shown as such,
never hidden, and never block the view. The admin role is checked by the auth interceptor."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from cellfed.v1 import cell_pb2, common_pb2, federation_pb2, federation_pb2_grpc

from cellapi.router import requests as rq
from cellapi.router.cell_clients import CellClients
from cellapi.router.directory import Directory
from cellapi.router.peers import rtt_of
from cellapi.router.placement import Placement
from cellapi.router.prober import Prober, cell_target, router_target
from cellapi.router.settings import RouterSettings
from fedlib.catalog import resolve_flavor
from fedlib.errors import InvalidArgument, NotFound
from fedrpc.channel import open_channel
from fedrpc.handlers import unary
from replication.model import CellState


class FederationServicer(federation_pb2_grpc.FederationServiceServicer):
    def __init__(
        self,
        settings: RouterSettings,
        directory: Directory,
        prober: Prober,
        placement: Placement,
        cells: CellClients,
        clock_ms: Callable[[], int],
        count: rq.Counter,
    ) -> None:
        self._settings, self._directory, self._prober = settings, directory, prober
        self._placement, self._cells, self._now, self.count_request = placement, cells, clock_ms, count

    @unary()
    async def ListSites(
        self, request: federation_pb2.ListSitesRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ListSitesResponse:
        return self._sites()

    async def snapshot_view(
        self, metadata: tuple[tuple[str, str], ...] = ()
    ) -> tuple[federation_pb2.ListSitesResponse, federation_pb2.RttMatrix]:
        """What ListSites and GetRttMatrix would answer, for in-process readers (the status page). Peer
        routers demand an admin token for their rows, so without `metadata` carrying one only this
        router's own row is included (the others are not asked, rather than asked to refuse); with
        one, each peer's row is fetched within the probe deadline, as GetRttMatrix does."""
        return self._sites(), await self._rtt_matrix(metadata, local_only=not metadata)

    def _sites(self) -> federation_pb2.ListSitesResponse:
        out = federation_pb2.ListSitesResponse(observed_from=self._settings.site_id)
        for site_id in sorted(self._directory.snapshot.sites):
            view = self._site_view(site_id)
            out.sites.append(view)
            if view.health in (common_pb2.SUSPECT, common_pb2.OFFLINE, common_pb2.HEALTH_UNKNOWN):
                out.unreachable_sites.append(site_id)
        return out

    @unary()
    async def GetSite(
        self, request: federation_pb2.GetSiteRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.SiteView:
        prefix, _, site_id = request.name.partition("/")
        if prefix != "sites" or site_id not in self._directory.snapshot.sites:
            raise NotFound(f"site {request.name!r} not found (names look like 'sites/par1')", field="name")
        return self._site_view(site_id)

    def _site_view(self, site_id: str) -> federation_pb2.SiteView:
        snap, now = self._directory.snapshot, self._now()
        site = snap.sites[site_id]
        view = federation_pb2.SiteView(
            name=f"sites/{site_id}",
            site=site_id,
            region=site.region,
            location=common_pb2.GeoPoint(latitude=site.lat, longitude=site.lon),
        )
        for cell in sorted((c for c in snap.cells.values() if c.site_id == site_id), key=lambda c: c.cell_id):
            view.cells.append(self._cell_view(cell.cell_id))
        routers = [r for r in snap.routers.values() if r.site_id == site_id]
        for r in routers:
            rv = view.routers.add(router_id=r.router_id, site=site_id, endpoint=r.endpoint)
            rv.heartbeat_age.FromMilliseconds(max(0, now - r.heartbeat_at_ms))
            rtt = self._rtt(router_target(r.router_id))
            if rtt is not None:
                rv.rtt.FromMilliseconds(int(rtt))
        if routers:
            view.heartbeat_age.FromMilliseconds(max(0, now - max(r.heartbeat_at_ms for r in routers)))
        view.data_age.FromMilliseconds(max(0, now - site.updated_at_ms))
        healths = [c.health for c in view.cells]
        view.health = min(healths, default=common_pb2.HEALTH_UNKNOWN) if routers else common_pb2.OFFLINE
        return view

    def _cell_view(self, cell_id: str) -> federation_pb2.CellView:
        snap, now = self._directory.snapshot, self._now()
        cell = snap.cells[cell_id]
        drained = cell.state is not CellState.ENABLED
        health = self._prober.health(cell_target(cell_id), drained=drained)
        view = federation_pb2.CellView(
            name=f"sites/{cell.site_id}/cells/{cell_id}",
            cell=cell_id,
            site=cell.site_id,
            endpoint=cell.endpoint,
            health=getattr(common_pb2, health.value),
            drained=drained,
        )
        cap = snap.capacity.get(cell_id)
        if cap is not None:
            view.capacity.CopyFrom(
                common_pb2.Capacity(
                    vcpus_total=cap.vcpus_total,
                    vcpus_free=cap.vcpus_free,
                    memory_mb_total=cap.mem_mb_total,
                    memory_mb_free=cap.mem_mb_free,
                    disk_gb_total=cap.disk_gb_total,
                    disk_gb_free=cap.disk_gb_free,
                    hosts_up=cap.hosts_up,
                    instances=cap.instances,
                )
            )
            view.capacity_age.FromMilliseconds(max(0, now - cap.updated_at_ms))
        rtt = self._rtt(cell_target(cell_id))
        if rtt is not None:
            view.rtt.FromMilliseconds(int(rtt))
        return view

    def _rtt(self, target: str) -> float | None:
        return rtt_of(self._prober.table, target)

    @unary()
    async def ExplainPlacement(
        self, request: federation_pb2.ExplainPlacementRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.PlacementExplanation:
        flavor = resolve_flavor(request.flavor)
        ex = self._placement.explain(flavor, request.placement, request.from_site or self._settings.site_id)
        out = federation_pb2.PlacementExplanation(
            chosen_cell=ex.chosen.cell.cell_id if ex.chosen else "", summary=f"{ex.reference}: {ex.summary}"
        )
        for r in ex.candidates:
            c = out.candidates.add(
                cell=r.cell.cell_id,
                site=r.site.site_id,
                region=r.region,
                rtt_measured=r.rtt_measured,
                distance_km=r.distance_km,
                health=getattr(common_pb2, r.health.value),
                score=r.score,
                share=r.share,
                eligible=r.eligible,
                reason=r.reason,
            )
            c.rtt.FromMilliseconds(int(r.rtt_ms))
        out.evaluated_at.FromMilliseconds(self._now())
        return out

    async def _drain(
        self, request: federation_pb2.DrainCellRequest, drained: bool
    ) -> federation_pb2.CellView:
        parts = request.name.split("/")
        cell_id = parts[3] if len(parts) == 4 and parts[0] == "sites" and parts[2] == "cells" else ""
        cell = self._directory.snapshot.cells.get(cell_id)
        if cell is None:
            raise InvalidArgument(
                f"name {request.name!r} is not a known cell ('sites/<site>/cells/<cell>')", field="name"
            )
        req = cell_pb2.SetCellDrainedRequest(drained=drained, reason=request.reason)
        await self._cells.call(cell, "SetCellDrained", req, self._settings.cell_timeout_s)
        await self._directory.refresh()  # the cell published its new state: show it (and place by it) now
        return self._cell_view(cell_id)

    @unary()
    async def DrainCell(
        self, request: federation_pb2.DrainCellRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.CellView:
        return await self._drain(request, True)

    @unary()
    async def UndrainCell(
        self, request: federation_pb2.DrainCellRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.CellView:
        return await self._drain(request, False)

    @unary()
    async def GetRttMatrix(
        self, request: federation_pb2.GetRttMatrixRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.RttMatrix:
        metadata = tuple((k, v) for k, v in context.invocation_metadata() or () if k == "authorization")
        return await self._rtt_matrix(metadata, local_only=request.local_only)

    async def _rtt_matrix(
        self, metadata: tuple[tuple[str, str], ...], *, local_only: bool
    ) -> federation_pb2.RttMatrix:
        sites = sorted(self._directory.snapshot.sites)
        out = federation_pb2.RttMatrix(sites=sites)
        out.rows.append(self._own_row(sites))
        if local_only:
            return out
        peers = [
            r for r in self._directory.snapshot.routers.values() if r.router_id != self._settings.router_id
        ]
        rows = await asyncio.gather(*(self._peer_row(r.endpoint, metadata) for r in peers))
        out.rows.extend(row for row in rows if row is not None)
        return out

    def _own_row(self, sites: list[str]) -> federation_pb2.RttRow:
        best: dict[str, float] = {}
        for cell in self._directory.snapshot.cells.values():
            rtt = self._rtt(cell_target(cell.cell_id))
            if rtt is not None:
                best[cell.site_id] = min(rtt, best.get(cell.site_id, rtt))
        row = federation_pb2.RttRow(
            from_site=self._settings.site_id, rtt_ms=[best.get(s, -1.0) for s in sites]
        )
        return row

    async def _peer_row(
        self, endpoint: str, metadata: tuple[tuple[str, str], ...]
    ) -> federation_pb2.RttRow | None:
        async with open_channel(self._settings.dial_address(endpoint)) as channel:
            try:
                reply = await federation_pb2_grpc.FederationServiceStub(channel).GetRttMatrix(
                    federation_pb2.GetRttMatrixRequest(local_only=True),
                    timeout=self._settings.probe_timeout_s,
                    metadata=metadata,
                )
            except grpc.aio.AioRpcError:
                return None  # that router did not answer in time: its row is missing, not waited for
        sites = sorted(self._directory.snapshot.sites)
        got = dict(zip(reply.sites, reply.rows[0].rtt_ms, strict=False)) if reply.rows else {}
        return federation_pb2.RttRow(
            from_site=reply.rows[0].from_site if reply.rows else "", rtt_ms=[got.get(s, -1.0) for s in sites]
        )
