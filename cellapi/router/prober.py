"""Probes every cell and peer router with grpc.health.v1 (each probe with its own deadline, all at once)
and feeds the pure detector (cellapi.router.peers): RTT EWMA, fast SUSPECT, slow OFFLINE."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cellapi.router import peers
from cellapi.router.directory import Directory
from cellapi.router.metrics import RouterMetrics
from cellapi.router.site_reports import nearest_by_site
from fedlib.pki.identity import Role
from fedrpc.dialer import Dialer

# One probe of an endpoint: its RTT in ms, or None when it did not answer SERVING in time.
ProbeCheck = Callable[[str], Awaitable[float | None]]


def cell_target(cell_id: str) -> str:
    return f"cell/{cell_id}"


def router_target(router_id: str) -> str:
    return f"router/{router_id}"


class Prober:
    def __init__(
        self,
        directory: Directory,
        metrics: RouterMetrics,
        clock_ms: Callable[[], int],
        timeout_s: float,
        dialer: Dialer | None = None,
        check: ProbeCheck | None = None,
    ) -> None:
        """`check` replaces the grpc.health.v1 probe (an in-process harness injecting RTTs)."""
        self._dialer = dialer or Dialer()
        self._check: ProbeCheck = check or self._probe
        self._directory, self._metrics, self._now, self._timeout_s = directory, metrics, clock_ms, timeout_s
        self.table = peers.PeerTable()
        # endpoint -> the (site, role) its server must prove under mTLS; refreshed by every targets().
        self._servers: dict[str, tuple[str, Role]] = {}

    def targets(self) -> dict[str, str]:
        """target name -> endpoint, for every cell and every other live router."""
        snap = self._directory.snapshot
        out = {cell_target(c.cell_id): c.endpoint for c in snap.cells.values()}
        out.update({router_target(r.router_id): r.endpoint for r in snap.routers.values()})
        servers = {c.endpoint: (c.site_id, Role.CELL) for c in snap.cells.values()}
        servers.update({r.endpoint: (r.site_id, Role.ROUTER) for r in snap.routers.values()})
        self._servers = servers
        return out

    async def probe_all(self) -> None:
        targets = self.targets()
        results = await asyncio.gather(*(self._check(ep) for ep in targets.values()))
        now = self._now()
        table = self.table
        for name in set(table.records) - set(targets):
            table = peers.forget(table, name)
        for (name, _), rtt in zip(targets.items(), results, strict=True):
            if rtt is None:
                table = peers.observe_failure(table, name, now)
            else:
                table = peers.observe_success(table, name, rtt, now)
                self._metrics.probe_rtt.labels(self._metrics.site, name).set(rtt / 1000)
        self.table = table

    async def _probe(self, endpoint: str) -> float | None:
        stub = self._stub(endpoint)
        started = time.perf_counter()
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=self._timeout_s)
        except grpc.aio.AioRpcError:
            return None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return None
        return (time.perf_counter() - started) * 1000

    def _stub(self, endpoint: str) -> health_pb2_grpc.HealthStub:
        # An endpoint no longer in the directory gets a name no certificate has: its probe fails, honestly.
        site, role = self._servers.get(endpoint, ("unknown", Role.CELL))
        return self._dialer.stub(health_pb2_grpc.HealthStub, endpoint, site, role)

    def health(self, target: str, **kw: object) -> peers.Health:
        return peers.health_of(self.table, target, self._now(), **kw)  # type: ignore[arg-type]

    def rtt_by_site(self) -> dict[str, float]:
        """site -> this router's RTT to that site's nearest reachable cell: its row of the RTT matrix.
        A cell that stopped answering has no RTT now (its last EWMA would read as a live figure)."""
        cells = {
            c.cell_id: c.site_id for c in self._directory.snapshot.cells.values() if self.reachable(c.cell_id)
        }
        return nearest_by_site(cells, lambda cell_id: peers.rtt_of(self.table, cell_target(cell_id)))

    def reachable(self, cell_id: str) -> bool:
        """Fast detection: a SUSPECT or OFFLINE cell gets no new work and is not waited for."""
        return self.health(cell_target(cell_id)) not in (peers.Health.SUSPECT, peers.Health.OFFLINE)

    async def close(self) -> None:
        await self._dialer.close()
