"""Assembles one cell controller from its parts. The process entry (cell.main) and the tests both use
this, so what the tests run is what operators run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellfed.v1 import agent_pb2_grpc, cell_pb2_grpc

from cell import upkeep
from cell.agent_hub import AgentHub
from cell.agent_link import AgentLink
from cell.claim_sweep import ClaimSweep
from cell.controller import CellController, ControllerSettings
from cell.host_reports import HostReports
from cell.metrics import CellMetrics
from cell.publisher import Publisher
from cell.reassert import Reasserter
from cell.reassert_pacing import Pacing
from cell.servicer import CellServicer
from fedlib.errors import NotFound
from fedlib.pki.identity import Role
from fedrpc.clock import wall_clock_ms
from fedrpc.peer_auth import PeerAuthInterceptor, PeerRule
from fedrpc.periodic import every
from fedrpc.revocation import RevocationList
from fedrpc.server import RunningServer, start_server
from fedrpc.tls import ReloadingTls, server_credentials
from replication.cell_records import CellRecords
from replication.model import Cell, CellState
from replication.store import Store

CELL_SERVICE = "cellfed.v1.CellService"
AGENT_SERVICE = "cellfed.v1.AgentService"


def _secure_port(
    settings: ControllerSettings, tls: ReloadingTls | None, revoked: RevocationList | None
) -> dict[str, Any]:
    """start_server's keywords for a port under mTLS: credentials demanding a client certificate and
    the authorization by it; nothing without TLS."""
    if tls is None:
        return {}
    rules = {
        CELL_SERVICE: PeerRule(frozenset({Role.ROUTER})),
        AGENT_SERVICE: PeerRule(frozenset({Role.AGENT}), site=settings.site_id),
    }
    return {
        "credentials": server_credentials(tls, require_client_cert=True),
        "interceptors": [PeerAuthInterceptor(tls.files.federation, rules, revoked=revoked)],
    }


@dataclass
class RunningCell:
    controller: CellController
    publisher: Publisher
    server: RunningServer
    agent_server: RunningServer | None = None  # the Agent API on a port of its own, when asked for
    reasserter: Reasserter | None = None
    claims: ClaimSweep | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def agent_port(self) -> int:
        return (self.agent_server or self.server).port

    async def stop(self) -> None:
        if self.agent_server is not None:
            await self.agent_server.stop(grace_s=1.0)
        await self.server.stop(grace_s=1.0)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def start_cell(
    settings: ControllerSettings,
    records: CellRecords,
    store: Store,
    *,
    listen: str,
    advertise: str | None = None,
    metrics: CellMetrics | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
    agent_listen: str | None = None,
    tls: ReloadingTls | None = None,
    revoked: RevocationList | None = None,
) -> RunningCell:
    """`clock_ms` is for in-process test harnesses that own time; production leaves the wall clock.

    `agent_listen` serves the Agent API on a port of its own (so network policy can tell the two APIs
    apart); without it both share `listen`. With `tls` (the controller's certificate) both ports demand
    mTLS, and callers are authorized by their certificate: the Cell API serves this federation's routers,
    the Agent API the agents of this cell's site; a client certificate whose serial is in `revoked` is
    refused on its next call."""
    metrics = metrics or CellMetrics(settings.cell_id, site=settings.site_id)
    m = metrics

    def count_reassert(rows: int, size: int) -> None:
        m.reassert_rows.labels(settings.cell_id).inc(rows)
        m.reassert_bytes.labels(settings.cell_id).inc(size)

    publisher = Publisher(
        cell_id=settings.cell_id, site_id=settings.site_id, index=store.index, listing=store.listing,
        capacity=store.capacity, networks=settings.networks,
        on_error=lambda what: metrics.publish_errors.labels(settings.cell_id, what).inc(),
        on_reassert=count_reassert,
    )  # fmt: skip
    hub = AgentHub()
    controller = CellController(
        settings, records, publisher, AgentLink(hub, settings.cell_id, settings.networks), clock_ms, metrics
    )
    hub.attach(HostReports(controller))
    await controller.load()

    publish_lock = asyncio.Lock()

    async def publish_state() -> None:
        """Writes the cell's directory row from its current state. State and timestamp are read under
        one lock, so the periodic re-assert can never overwrite a newer drain with an older state."""
        async with publish_lock:
            state = CellState.DRAINED if controller.drained else CellState.ENABLED
            await store.directory.put_cell(
                Cell(settings.cell_id, settings.site_id, settings.region, endpoint, state, clock_ms())
            )

    servicer = CellServicer(controller, lambda _drained: publish_state())
    cell_api = (lambda s: cell_pb2_grpc.add_CellServiceServicer_to_server(servicer, s), CELL_SERVICE)
    agent_api = (lambda s: agent_pb2_grpc.add_AgentServiceServicer_to_server(hub, s), AGENT_SERVICE)
    apis = [cell_api] if agent_listen else [cell_api, agent_api]
    secure = _secure_port(settings, tls, revoked)  # one set per port: grpc's credentials belong to one port
    server = await start_server(listen, [a[0] for a in apis], [a[1] for a in apis], **secure)
    agent_server = None
    if agent_listen:
        try:
            secure = _secure_port(settings, tls, revoked)
            agent_server = await start_server(agent_listen, [agent_api[0]], [agent_api[1]], **secure)
        except Exception:
            await server.stop(0)
            raise
    endpoint = advertise or f"{listen.rpartition(':')[0]}:{server.port}"
    with contextlib.suppress(NotFound):  # a drain outlives a restart of the controller
        controller.drained = (await store.directory.get_cell(settings.cell_id)).state is CellState.DRAINED
    await publish_state()
    running = RunningCell(controller, publisher, server, agent_server)
    c = controller
    pace = Pacing(int(settings.reassert_period_s * 1000), settings.reassert_rows_per_s)
    reasserter = Reasserter(
        c, publisher, store.listing, pace,
        on_sweep=metrics.reassert_sweep_seconds.labels(settings.cell_id).observe,
    )  # fmt: skip
    running.reasserter = reasserter

    async def regions() -> list[str]:
        return sorted({site.region for site in await store.directory.list_sites()})

    sweep = running.claims = ClaimSweep(c, store.idempotency, store.index, regions, settings.claim_sweep)
    running.tasks = [
        asyncio.create_task(coro)
        for coro in (
            publisher.run(),
            every(c.settings.desired_every_s, lambda: upkeep.push_desired_state(c), "desired state"),
            c.write_action_log(),
            every(1.0, lambda: upkeep.tick(c), "core tick"),
            every(2.0, lambda: upkeep.publish_capacity(c, publisher), "capacity publish"),
            # Level-triggered like the capacity summary: a replica that missed the row (a write lost on
            # a WAN link reset, a hint never replayed) is repaired by the next re-assert, not by luck.
            every(settings.directory_every_s, publish_state, "directory re-assert"),
            reasserter.run(),
            every(1.0, lambda: upkeep.refresh_gauges(c), "gauges"),
            every(c.settings.recent_every_s, lambda: upkeep.republish_recent(c, publisher), "recent"),
            every(settings.claim_sweep.every_s, sweep.sweep, "request claim sweep"),
        )
    ]
    return running
