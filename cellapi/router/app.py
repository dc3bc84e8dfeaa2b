"""Assembles one router from its parts; the process entry (cellapi.router.main) and the tests use it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellfed.v1 import compute_pb2_grpc, federation_pb2_grpc

from cellapi.auth import AuthInterceptor, KeyRing
from cellapi.router.cell_clients import CellClients
from cellapi.router.compute import ComputeServicer
from cellapi.router.create import Creator
from cellapi.router.directory import Directory
from cellapi.router.federation import FederationServicer
from cellapi.router.groups import GroupSites
from cellapi.router.instances import InstanceOps
from cellapi.router.listing import Lister
from cellapi.router.metrics import RouterMetrics
from cellapi.router.networks import network_summaries
from cellapi.router.owners import Owners
from cellapi.router.placement import Placement
from cellapi.router.prober import ProbeCheck, Prober
from cellapi.router.reporter import Reporter
from cellapi.router.revocations import Revocations
from cellapi.router.settings import RouterSettings
from cellapi.router.status_http import StatusServer, start_status_server
from fedlib.errors import ConfigError
from fedlib.ids import parse_instance_id
from fedlib.pki.identity import Role
from fedrpc.clock import wall_clock_ms
from fedrpc.dialer import Dialer
from fedrpc.peer_auth import PeerAuthInterceptor, PeerRule
from fedrpc.periodic import every
from fedrpc.server import RunningServer, start_server
from fedrpc.tls import ClientTls, ReloadingTls, server_credentials
from replication.store import Store

COMPUTE_SERVICE = "cellfed.v1.ComputeService"
FEDERATION_SERVICE = "cellfed.v1.FederationService"


async def _start_admin(
    listen: str, federation_api: Callable[[Any], None], auth: AuthInterceptor, tls: ReloadingTls | None
) -> RunningServer:
    """The operators' port: the Federation API only, to callers holding both an operator certificate of
    this federation (mTLS, checked first) and an admin token (the same check as anywhere)."""
    if tls is None:
        raise ConfigError("an admin port needs TLS (the router's --tls-dir): it demands client certificates")
    operators = PeerAuthInterceptor(
        tls.files.federation, {FEDERATION_SERVICE: PeerRule(frozenset({Role.OPERATOR}))}
    )
    return await start_server(
        listen,
        [federation_api],
        [FEDERATION_SERVICE],
        interceptors=[operators, auth],
        credentials=server_credentials(tls, require_client_cert=True),
    )


@dataclass
class RunningRouter:
    settings: RouterSettings
    directory: Directory
    prober: Prober
    server: RunningServer
    cells: CellClients
    revocations: Revocations
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    status: StatusServer | None = None  # the read-only status page, when asked for
    admin: RunningServer | None = None  # the Federation API on its own mTLS port, when asked for

    async def refresh_revocations(self) -> None:
        await self.revocations.refresh()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def status_port(self) -> int | None:
        return self.status.port if self.status else None

    @property
    def admin_port(self) -> int | None:
        return self.admin.port if self.admin else None

    async def stop(self) -> None:
        if self.status is not None:
            await self.status.stop()
        with contextlib.suppress(Exception):
            await self.directory.leave()  # peers stop seeing us at once, not after the TTL
        if self.admin is not None:
            await self.admin.stop(grace_s=1.0)
        await self.server.stop(grace_s=1.0)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.cells.close()
        await self.prober.close()


async def start_router(
    settings: RouterSettings,
    store: Store,
    keyring: KeyRing,
    *,
    listen: str,
    metrics: RouterMetrics | None = None,
    status_listen: str | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
    probe: ProbeCheck | None = None,
    tls: ReloadingTls | None = None,
    admin_listen: str | None = None,
) -> RunningRouter:
    """`status_listen` ("host:port"), when given, also serves the read-only status page there.
    `clock_ms` and `probe` (how one health probe is made and timed) are for in-process test harnesses
    that own time and the network; production passes neither.

    With `tls` (the router's certificate) users reach the router over TLS (their token says who they
    are; no client certificate is asked), and the router dials cells and probes peers with mTLS, each
    server proving its role and site. `admin_listen` moves the Federation API to a port of its own that
    also demands an operator's certificate (grpc's Python server cannot ask for a certificate without
    requiring it, so users and operators cannot share one port)."""
    metrics = metrics or RouterMetrics(settings.site_id)
    directory = Directory(store, settings, clock_ms)
    revocations = Revocations(store.revocations)
    await revocations.refresh()  # before serving: a revoked token is refused from the first call
    client_tls = None if tls is None else ClientTls(tls)
    prober = Prober(
        directory, metrics, clock_ms, settings.probe_timeout_s,
        Dialer(settings.dial_address, client_tls), check=probe,
    )  # fmt: skip
    # Its own channels, not the prober's: a forward never queues behind a probe's reconnect, or back.
    cells = CellClients(Dialer(settings.dial_address, client_tls), prober.reachable)
    owners = Owners(directory, store.index, metrics)

    def observe(target_site: str, method: str, code: str, seconds: float) -> None:
        metrics.forwarded.labels(settings.site_id, target_site, method, code).observe(seconds)

    def count(method: str, code: str, seconds: float) -> None:
        metrics.requests.labels(settings.site_id, method, code).inc()
        metrics.request_duration.labels(settings.site_id, method).observe(seconds)

    ops = InstanceOps(settings, owners, cells, observe, clock_ms)
    placement = Placement(settings, directory, prober, clock_ms)
    creator = Creator(
        region=settings.region,
        site_id=settings.site_id,
        ledger=store.idempotency,
        cells=cells,
        clock_ms=clock_ms,
        timeout_s=settings.cell_timeout_s,
        ttl_s=settings.idempotency_ttl_s,
        peer_regions=lambda: sorted(
            {s.region for s in directory.snapshot.sites.values()} - {settings.region}
        ),
        outcome=lambda o: metrics.routing.labels(settings.site_id, o).inc(),
        lookup=lambda iid, tenant: ops.call(parse_instance_id(iid), tenant, "GetInstance"),
        cell_of=lambda cell_id: directory.snapshot.cells.get(cell_id),
    )
    lister = Lister(
        store.listing,
        directory,
        cells,
        prober.reachable,
        settings.enrich_timeout_s,
        clock_ms,
        lambda site: metrics.unreachable.labels(settings.site_id, site).inc(),
    )
    groups = GroupSites(directory, cells, prober.reachable, settings.enrich_timeout_s)
    networks = lambda: network_summaries(directory.snapshot.cells, directory.snapshot.capacity)  # noqa: E731
    compute = ComputeServicer(settings, placement, creator, ops, lister, count, groups, networks)
    federation = FederationServicer(settings, directory, prober, placement, cells, clock_ms, count)
    compute_api = lambda s: compute_pb2_grpc.add_ComputeServiceServicer_to_server(compute, s)  # noqa: E731
    federation_api = lambda s: federation_pb2_grpc.add_FederationServiceServicer_to_server(federation, s)  # noqa: E731
    auth = AuthInterceptor(keyring, revoked=revocations.current)
    public = [(compute_api, COMPUTE_SERVICE)] + (
        [] if admin_listen else [(federation_api, FEDERATION_SERVICE)]
    )
    server = await start_server(
        listen,
        [api for api, _ in public],
        [name for _, name in public],
        interceptors=[auth],
        credentials=None if tls is None else server_credentials(tls, require_client_cert=False),
    )
    admin = None
    if admin_listen:
        try:
            admin = await _start_admin(admin_listen, federation_api, auth, tls)
        except Exception:  # e.g. no TLS, or the address is taken: leave nothing running behind
            await server.stop(0)
            raise
    if not directory.advertise:
        directory.advertise = f"{listen.rpartition(':')[0]}:{server.port}"
    reporter = Reporter(settings, store.routers, metrics, prober.rtt_by_site, clock_ms)

    async def heartbeat() -> None:
        await directory.announce()
        await reporter.publish()  # after the heartbeat: a failed report never delays being seen alive

    await directory.announce()
    await directory.refresh()
    await prober.probe_all()
    running = RunningRouter(settings, directory, prober, server, cells, revocations, admin=admin)
    running.tasks = [
        asyncio.create_task(every(settings.heartbeat_s, heartbeat, "heartbeat")),
        # Within a heartbeat of reaching this DC, a revocation is honoured here.
        asyncio.create_task(every(settings.heartbeat_s, revocations.refresh, "revocations")),
        asyncio.create_task(every(settings.refresh_s, directory.refresh, "directory refresh")),
        asyncio.create_task(every(settings.probe_s, prober.probe_all, "probes")),
    ]
    if status_listen:
        try:
            running.status = await start_status_server(status_listen, federation.snapshot_view, clock_ms)
        except Exception:  # e.g. the address is taken: leave nothing running behind
            await running.stop()
            raise
    return running
