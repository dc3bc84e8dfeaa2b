"""A federation in one process, for unit tests of request handling (nomad's scheduler `Harness`, applied to
the whole request path): routers from cellapi.router.app.start_router and cells from cell.app.start_cell
(the composition roots the processes use), over the in-memory twins of the global keyspace and the cell
keyspaces, with fake compute agents (tests.inprocess.agent) and a fault-injecting link in front of each
cell (tests.inprocess.link). Real gRPC on loopback, so what is tested is the code that runs; no
Cassandra, no libvirt, milliseconds per request.

The harness owns time and the network, so tests are scripts rather than races:
- one ManualClock for every router, cell and the store: nothing ages unless `advance()` says so;
- routers' periodic loops are parked (intervals of an hour); `sync()` does what they would do: publish
  each cell's capacity (as its GetCellStatus says), re-read the directory, probe every cell;
- probe RTTs are injected (`set_rtt`, default: estimated from geography), so candidate order is fixed;
  a probe still crosses the link, so a stopped or cut cell really fails it;
- `mark_down()` stops (or cuts) a cell and probes until every router no longer offers it work.

Tests wait on conditions with deadlines (`until`), never on sleeps.

Why here and not shipped in the product (as temporal ships its harness): it composes a router and cells in
one module, which no product package may do (import-linter keeps `cell` and `cellapi.router` apart), and
no user of cellfed runs code inside a router or cell that would want it. tests/ is not packaged, so
production code cannot import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from cellfed.v1 import cell_pb2, cell_pb2_grpc, compute_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cell import upkeep
from cell.app import RunningCell, start_cell
from cell.controller import ControllerSettings
from cell.request_claims import SweepSettings
from cellapi.auth import KeyRing, bearer_interceptors, generate_keypair, mint, read_private_key
from cellapi.router.app import RunningRouter, start_router
from cellapi.router.geo import GeoPoint, distance_km, estimate_rtt_ms
from cellapi.router.settings import RouterSettings
from fedlib.errors import NotFound
from fedlib.pki.identity import Role, server_name
from fedrpc.channel import SecureTarget, open_channel
from fedrpc.tls import ClientTls
from replication.memory import ManualClock, MemoryStore
from replication.memory_cell import MemoryCellRecords
from replication.model import IndexEntry, Site, SiteState
from replication.store import Store
from tests.inprocess.agent import FakeAgent, HostSpec
from tests.inprocess.link import CellLink, LinkTls
from tests.inprocess.pki import FEDERATION, HarnessPki
from tests.inprocess.specs import AMS1, NYC1, PAR1, SITES, CellSpec, SiteSpec, cells, create_request
from tests.inprocess.store import ClaimsNet, HeldIndex, RegionClaims, StoreView

__all__ = [
    "AMS1", "NYC1", "PAR1", "SITES", "CellSpec", "FakeAgent", "Harness", "HarnessCell", "HostSpec",
    "SiteSpec", "cells", "create_request",
]  # fmt: skip

_PARKED_S = 3600.0  # routers' own loops wait this long: the harness drives them
_KEY_ID = "harness"
_NOWHERE = "127.0.0.1:9"


@dataclass
class HarnessCell:
    spec: CellSpec
    site: SiteSpec
    link: CellLink
    records: MemoryCellRecords = field(default_factory=MemoryCellRecords)
    agents: dict[str, FakeAgent] = field(default_factory=dict)
    running: RunningCell | None = None
    operator: ClientTls | None = None  # how the harness itself calls the cell under mTLS (as a router)
    _channel: tuple[str, grpc.aio.Channel] | None = None

    @property
    def cell_id(self) -> str:
        return self.spec.cell_id

    @property
    def address(self) -> str:
        """The cell's own server, behind the link (agents and the harness dial it)."""
        assert self.running is not None, f"cell {self.cell_id} is stopped"
        return f"127.0.0.1:{self.running.port}"

    async def status(self) -> cell_pb2.CellStatus:
        """The cell's own GetCellStatus, asked directly (not across the link)."""
        address = self.address
        if self._channel is None or self._channel[0] != address:
            await self.close_channel()
            secure = self.operator and self.operator.target(self.site.site_id, Role.CELL)
            self._channel = (address, open_channel(address, secure))
        stub = cell_pb2_grpc.CellServiceStub(self._channel[1])
        status: cell_pb2.CellStatus = await stub.GetCellStatus(cell_pb2.GetCellStatusRequest(), timeout=2)
        return status

    async def close_channel(self) -> None:
        if self._channel is not None:
            await self._channel[1].close()
            self._channel = None

    async def holds(self, instance_id: str) -> bool:
        """Whether this cell has persisted the instance (its keyspace, the truth), up or down."""
        try:
            await self.records.get_instance(instance_id)
            return True
        except NotFound:
            return False


class Harness:
    def __init__(
        self, sites: Sequence[SiteSpec], workdir: Path, *, tls: bool = False, admin_port: bool = False
    ) -> None:
        self.clock = ManualClock(start_ms=time.time_ns() // 1_000_000)
        self.store = MemoryStore(self.clock.now_ms, region=sites[0].region)
        self.index = HeldIndex(self.store.index)
        self.claims_net = ClaimsNet()
        self.sites = {s.site_id: s for s in sites}
        self.cells: dict[str, HarnessCell] = {}
        self.routers: dict[str, RunningRouter] = {}
        self._rtt: dict[tuple[str, str], float] = {}  # (router site, cell id) -> injected RTT ms
        self._channels: list[grpc.aio.Channel] = []
        self._probes: dict[str, health_pb2_grpc.HealthStub] = {}
        generate_keypair(workdir, _KEY_ID)
        self._keys = workdir
        # With tls, every link is what production runs under mTLS: users reach routers over TLS, routers
        # dial cells and agents their controller's own port with certificates of this PKI.
        self.pki = HarnessPki(workdir, {s.region for s in sites}) if tls else None
        self._admin_port = admin_port  # routers serve the Federation API on an operators' mTLS port

    # -- assembly --------------------------------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        sites: Sequence[SiteSpec],
        cells: Sequence[CellSpec],
        *,
        routers: Iterable[str] | None = None,
        router_settings: Mapping[str, Any] | None = None,
        tls: bool = False,
        admin_port: bool = False,
    ) -> AsyncIterator[Harness]:
        """Sites, their cells (each with its fake agents connected) and a router at each site in
        `routers` (default: every site), synced once. `router_settings` overrides RouterSettings fields (e.g.
        cell_timeout_s) for every router."""
        with tempfile.TemporaryDirectory(prefix="cellfed-harness-") as workdir:
            h = cls(sites, Path(workdir), tls=tls, admin_port=admin_port)
            try:
                with_router = list(routers) if routers is not None else [s.site_id for s in sites]
                await h._put_sites(without=with_router)
                for site_id in with_router:
                    await h.start_router(site_id, **(router_settings or {}))
                for spec in cells:
                    await h.start_cell(spec)
                await h.sync()
                yield h
            finally:
                await h.close()

    def view(self, region: str) -> Store:
        s = self.store
        return StoreView(
            s.directory, s.routers, s.capacity, self.index, s.listing,
            RegionClaims(s.idempotency.for_region(region), region, self.claims_net), s.revocations,
        )  # fmt: skip

    async def _put_sites(self, without: Sequence[str]) -> None:
        """Rows of the sites that have no router (a router announces its own): an operator's launcher
        writes them; their router endpoint is a port nothing listens on."""
        for s in self.sites.values():
            if s.site_id not in without:
                await self.store.directory.put_site(
                    Site(s.site_id, s.region, s.lat, s.lon, _NOWHERE, SiteState.ENABLED, self.clock.now_ms())
                )

    async def start_router(self, site_id: str, **overrides: Any) -> RunningRouter:
        site = self.sites[site_id]
        settings = RouterSettings(
            router_id=f"{site_id}-r1", site_id=site_id, region=site.region, lat=site.lat, lon=site.lon,
            advertise="", heartbeat_s=_PARKED_S, refresh_s=_PARKED_S, probe_s=_PARKED_S,
            probe_timeout_s=0.5, cell_timeout_s=2.0, enrich_timeout_s=0.5,
        )  # fmt: skip
        settings = replace(settings, **overrides)
        router = await start_router(
            settings, self.view(site.region), KeyRing(self._keys), listen="127.0.0.1:0",
            clock_ms=self.clock.now_ms, probe=lambda endpoint: self._probe(site_id, endpoint),
            tls=self.pki and self.pki.component(site.region, site_id, Role.ROUTER, "r1"),
            admin_listen="127.0.0.1:0" if self._admin_port else None,
        )  # fmt: skip
        self.routers[site_id] = router
        return router

    async def start_cell(self, spec: CellSpec, *, build_timeout_s: float = 120.0) -> HarnessCell:
        """Starts (or restarts, keeping its keyspace) a cell behind its link, and connects its agents."""
        cell = self.cells.get(spec.cell_id)
        site = self.sites[spec.site_id]
        tls = self.pki and self.pki.component(site.region, spec.site_id, Role.CELL, spec.cell_id)
        if cell is None:
            link_tls = None
            if self.pki is not None and tls is not None:
                back = self.pki.client(site.region, spec.site_id, Role.ROUTER, "link")
                link_tls = LinkTls(tls, back, spec.site_id)
            cell = HarnessCell(spec, site, CellLink(link_tls))
            await cell.link.start()
            self.cells[spec.cell_id] = cell
        settings = ControllerSettings(
            cell_id=spec.cell_id, site_id=spec.site_id, region=cell.site.region,
            build_timeout_ms=int(build_timeout_s * 1000), claim_sweep=SweepSettings(every_s=_PARKED_S),
            networks=spec.networks,
        )  # fmt: skip
        cell.running = await start_cell(
            settings, cell.records, self.view(cell.site.region), listen="127.0.0.1:0",
            advertise=cell.link.endpoint, clock_ms=self.clock.now_ms, tls=tls,
            agent_listen="127.0.0.1:0" if tls else None,
        )  # fmt: skip
        cell.operator = self.pki and self.pki.client(cell.site.region, spec.site_id, Role.ROUTER, "harness")
        await cell.link.connect(cell.address)
        for host in spec.host_specs():
            await self.add_host(spec.cell_id, host)
        return cell

    async def add_host(self, cell_id: str, host: HostSpec) -> FakeAgent:
        """Connects a fake agent for `host` and waits until the cell counts it up."""
        cell = self.cells[cell_id]
        agent = cell.agents.get(host.host_id) or FakeAgent(host, cell_id, "")
        assert cell.running is not None
        agent.controller = f"127.0.0.1:{cell.running.agent_port}"
        if self.pki is not None:
            site = cell.site
            agent.tls = self.pki.client(site.region, site.site_id, Role.AGENT, host.host_id)
        await agent.connect()
        cell.agents[host.host_id] = agent

        async def up() -> bool:
            return any(h.host == host.host_id and h.up for h in (await cell.status()).hosts)

        await self.until(up, f"host {host.host_id} up in {cell_id}")
        return agent

    async def stop_cell(self, cell_id: str) -> None:
        """The controller process dies (its keyspace survives); agents lose their stream."""
        cell = self.cells[cell_id]
        for agent in cell.agents.values():
            await agent.disconnect()
        if cell.running is not None:
            await cell.running.stop()
            cell.running = None

    async def close(self) -> None:
        self.index.release()
        for router in self.routers.values():
            await router.stop()
        for cell_id in self.cells:
            await self.stop_cell(cell_id)
        for cell in self.cells.values():
            await cell.link.stop()
            await cell.close_channel()
        for channel in self._channels:
            await channel.close()

    # -- time and the network --------------------------------------------------------------------------
    async def advance(self, seconds: float) -> None:
        """Moves every clock on; connected, willing agents heartbeat as real ones would have meanwhile."""
        self.clock.advance(seconds)
        for cell in self.cells.values():
            if cell.running is None:
                continue
            beating = [a.host_id for a in cell.agents.values() if a.mode != "silent"]
            for agent in cell.agents.values():
                await agent.heartbeat()

            async def seen(cell: HarnessCell = cell, beating: list[str] = beating) -> bool:
                now = self.clock.now_ms()
                hosts = {h.host: h.last_heartbeat.ToMilliseconds() for h in (await cell.status()).hosts}
                return all(hosts.get(host, 0) >= now for host in beating)

            await self.until(seen, f"heartbeats of {cell.cell_id} after advancing {seconds}s")

    def set_rtt(self, router_site: str, cell_id: str, rtt_ms: float) -> None:
        self._rtt[(router_site, cell_id)] = rtt_ms

    def rtt(self, router_site: str, cell_id: str) -> float:
        if (router_site, cell_id) in self._rtt:
            return self._rtt[(router_site, cell_id)]
        a, b = self.sites[router_site], self.cells[cell_id].site
        return max(0.5, estimate_rtt_ms(distance_km(GeoPoint(a.lat, a.lon), GeoPoint(b.lat, b.lon))))

    async def _probe(self, router_site: str, endpoint: str) -> float | None:
        """A real grpc.health.v1 check across the link; the RTT reported is the injected one."""
        stub = self._probes.get(endpoint)
        cell = next((c for c in self.cells.values() if c.link.endpoint == endpoint), None)
        if stub is None:
            secure = None
            if self.pki is not None:
                secure = self._probe_security(router_site, endpoint, cell)
            channel = open_channel(endpoint, secure)
            self._channels.append(channel)
            stub = self._probes[endpoint] = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.aio.AioRpcError:
            return None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return None
        return self.rtt(router_site, cell.cell_id) if cell is not None else 1.0

    def _probe_security(self, router_site: str, endpoint: str, cell: HarnessCell | None) -> SecureTarget:
        """Under mTLS a probe proves what it dials: a cell's front or a peer router, by the probing router."""
        assert self.pki is not None
        me = self.sites[router_site]
        client = self.pki.client(me.region, router_site, Role.ROUTER, "harness")
        if cell is not None:
            return client.target(cell.site.site_id, Role.CELL)
        peer = next((s for s, r in self.routers.items() if endpoint.endswith(f":{r.port}")), "unknown")
        return client.target(peer, Role.ROUTER)

    async def probe(self, rounds: int = 1) -> None:
        for _ in range(rounds):
            for router in self.routers.values():
                await router.prober.probe_all()

    async def publish_capacity(self) -> None:
        """Each running cell's capacity summary, made as the cell makes it (cell.upkeep), at the
        harness's now: what its own 2 s publish loop would have written by now."""
        for cell in self.cells.values():
            if cell.running is not None:
                await self.store.capacity.publish(upkeep.capacity_summary(cell.running.controller))

    async def sync(self) -> None:
        """What the periodic loops would have done by now: capacity published, directories re-read,
        every cell probed."""
        await self.publish_capacity()
        for router in self.routers.values():
            await router.directory.refresh()
            await router.refresh_revocations()
        await self.probe()

    async def mark_down(self, cell_id: str, *, how: str = "stop") -> None:
        """The cell dies ("stop") or its link is cut ("cut"); returns once no router offers it work."""
        if how == "stop":
            await self.stop_cell(cell_id)
        else:
            self.cells[cell_id].link.cut()
        for _ in range(10):
            if not any(r.prober.reachable(cell_id) for r in self.routers.values()):
                return
            await self.probe()
        raise AssertionError(f"routers still see {cell_id} as reachable")

    async def settle_claims(self) -> None:
        """What every cell's claim sweep does on its next pass (parked otherwise)."""
        for cell in self.cells.values():
            if cell.running is not None and cell.running.claims is not None:
                await cell.running.claims.sweep()

    def hold_index(self) -> None:
        """Cells' index writes wait (a publish not landed yet) until `release_index()`."""
        self.index.hold()

    def release_index(self) -> None:
        self.index.release()

    # -- clients and observations ----------------------------------------------------------------------
    def token(
        self,
        tenant: str = "acme",
        roles: Sequence[str] = ("user",),
        *,
        issued_s_ago: float = 0,
        ttl_s: int = 3600,
    ) -> str:
        """A token the routers trust (`issued_s_ago` past its `ttl_s`: an expired one)."""
        return mint(
            read_private_key(self._keys, _KEY_ID), _KEY_ID, subject=f"{tenant}-user", tenant=tenant,
            roles=roles, ttl_s=ttl_s, now_s=time.time() - issued_s_ago,
        )  # fmt: skip

    @property
    def key_id(self) -> str:
        return _KEY_ID

    def api(self, site_id: str, tenant: str = "acme") -> compute_pb2_grpc.ComputeServiceStub:
        """The public Compute API of the router at `site_id`, as `tenant`."""
        router = self.routers[site_id]
        address, interceptors = f"127.0.0.1:{router.port}", bearer_interceptors(self.token(tenant))
        if self.pki is None:
            channel = grpc.aio.insecure_channel(address, interceptors=interceptors)
        else:  # a user: trusts the federation root, shows no certificate, proves itself with its token
            credentials = grpc.ssl_channel_credentials(root_certificates=self.pki.ca_pem)
            name = [("grpc.ssl_target_name_override", server_name(FEDERATION, site_id, Role.ROUTER))]
            channel = grpc.aio.secure_channel(address, credentials, options=name, interceptors=interceptors)
        self._channels.append(channel)
        return compute_pb2_grpc.ComputeServiceStub(channel)

    async def holders(self, instance_id: str) -> set[str]:
        """Every cell whose keyspace holds the instance."""
        return {c.cell_id for c in self.cells.values() if await c.holds(instance_id)}

    async def indexed(self, instance_id: str, status: str | None = None) -> IndexEntry:
        """Waits until the index row of the instance is published (with `status`, when given)."""
        found: list[IndexEntry] = []

        async def present() -> bool:
            try:
                entry = await self.store.index.get(instance_id)
            except NotFound:
                return False
            found[:] = [entry]
            return status is None or entry.status.value == status

        await self.until(present, f"index row of {instance_id}" + (f" with {status}" if status else ""))
        return found[0]

    async def until(
        self, condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 3.0
    ) -> None:
        """Polls `condition` until it holds; fails naming `what` after `timeout_s` (of real time)."""
        deadline = time.monotonic() + timeout_s
        while not await condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.002)
