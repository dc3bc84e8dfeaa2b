"""The operator Federation API: what this router knows of every site (directory rows, capacity summaries,
the reports routers publish with their heartbeats, its own probes), each with the age of the data;
placement explanations; drain; the RTT matrix. Sites that do not answer are shown as such, never hidden,
and never block the view. The admin role is checked by the auth interceptor.

Everything here is read from this router's own DC: peers' traffic and RTT rows come from their published
reports (cellapi.router.reporter), not from asking them. The matrix used to fan out to every peer router;
that cost a WAN round trip per peer, needed the caller's admin token (so the token-less status page could
show only its own row) and lost the row of any router that was down. The published rows are at most a
heartbeat plus replication lag old and carry their age, so the fan-out no longer serves a purpose."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from cellfed.v1 import cell_pb2, common_pb2, federation_pb2, federation_pb2_grpc

from cellapi.router import requests as rq
from cellapi.router.cell_clients import CellClients
from cellapi.router.directory import Directory
from cellapi.router.host_ops import HostOps, parse_cell
from cellapi.router.networks import cell_networks
from cellapi.router.peers import rtt_of
from cellapi.router.placement import Placement
from cellapi.router.prober import Prober, cell_target, router_target
from cellapi.router.settings import RouterSettings
from cellapi.router.site_reports import freshest_by_site, matrix_row, site_traffic
from fedlib.catalog import resolve_flavor
from fedlib.errors import NotFound
from fedlib.networks import check_requested
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
        self._hosts = HostOps(directory, cells, settings.cell_timeout_s)

    @unary()
    async def ListSites(
        self, request: federation_pb2.ListSitesRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ListSitesResponse:
        return self._sites()

    async def snapshot_view(self) -> tuple[federation_pb2.ListSitesResponse, federation_pb2.RttMatrix]:
        """What ListSites and GetRttMatrix answer, for in-process readers (the status page)."""
        return self._sites(), self._rtt_matrix(local_only=False)

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
        self._traffic(view, site_id)
        healths = [c.health for c in view.cells]
        view.health = min(healths, default=common_pb2.HEALTH_UNKNOWN) if routers else common_pb2.OFFLINE
        return view

    def _traffic(self, view: federation_pb2.SiteView, site_id: str) -> None:
        # Reports close to the site's newest count; three heartbeats apart is still "the same moment".
        current_ms = int(self._settings.heartbeat_s * 3 * 1000)
        t = site_traffic(self._directory.snapshot.reports.values(), site_id, current_ms)
        if t is None:
            return  # no router of that site ever reported (or its reports aged out): unset, not zero
        tv = view.traffic
        tv.requests_per_second, tv.errors_per_second = t.requests_per_second, t.errors_per_second
        if t.p99_ms is not None:
            tv.p99_latency.FromMicroseconds(round(t.p99_ms * 1000))
        tv.data_age.FromMilliseconds(max(0, self._now() - t.reported_at_ms))
        tv.window.FromMilliseconds(t.window_ms)

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
            view.instances_by_status.update(cap.instances_by_status)
            view.networks.extend(cell_networks(cap))
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
        rq.check_placement(request.placement)
        networks = check_requested(list(request.networks))
        from_site = request.from_site or self._settings.site_id
        ex = self._placement.explain(flavor, request.placement, from_site, networks=networks)
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
        # The site in the name must be the cell's own: sites/nyc1/cells/par1-c1 names no cell.
        cell = parse_cell(request.name, self._directory, field="name")
        cell_id = cell.cell_id
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

    # -- compute hosts, forwarded to their cell (cellapi.router.host_ops) -------------------------------
    @unary()
    async def ListHosts(
        self, request: federation_pb2.ListHostsRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.ListHostsResponse:
        return await self._hosts.list(request.parent)

    @unary()
    async def DisableHost(
        self, request: federation_pb2.HostRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.HostView:
        return await self._hosts.set_disabled(request, True)

    @unary()
    async def EnableHost(
        self, request: federation_pb2.HostRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.HostView:
        return await self._hosts.set_disabled(request, False)

    @unary()
    async def EvacuateHost(
        self, request: federation_pb2.EvacuateHostRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.EvacuateHostResponse:
        return await self._hosts.evacuate(request)

    @unary()
    async def GetRttMatrix(
        self, request: federation_pb2.GetRttMatrixRequest, context: grpc.aio.ServicerContext
    ) -> federation_pb2.RttMatrix:
        return self._rtt_matrix(local_only=request.local_only)

    def _rtt_matrix(self, *, local_only: bool) -> federation_pb2.RttMatrix:
        """This router's own row live; every other site's row from its routers' newest report."""
        sites = sorted(self._directory.snapshot.sites)
        me = self._settings.site_id
        out = federation_pb2.RttMatrix(sites=sites)
        out.rows.add(from_site=me, rtt_ms=matrix_row(self._prober.rtt_by_site(), sites))
        if local_only:
            return out
        now = self._now()
        for site_id, report in sorted(freshest_by_site(self._directory.snapshot.reports.values()).items()):
            if site_id == me or site_id not in self._directory.snapshot.sites:
                continue
            row = out.rows.add(from_site=site_id, rtt_ms=matrix_row(report.rtt_ms, sites))
            row.data_age.FromMilliseconds(max(0, now - report.reported_at_ms))
        return out
