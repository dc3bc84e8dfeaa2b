"""The cell controller: the authority for its instances and hosts, as a thin shell around the pure core.

Every change is one step of `cell.core.CellCore` under one asyncio lock: take the lock, step, persist
the batch's rows (the only write on the request path; several rows go out together), advance the core,
release the lock; then carry out the rest of the batch: the new desired state of every host that must
act (cell.agent_link; agents get no commands, only desired state), index publishes (cell.publisher),
watcher updates, and the action log, which a
background task writes off the critical path (best effort: the record is the truth).

Agents are level-triggered: on connect, on every change and every `desired_every_s` each host gets its
full desired state, so a lost message or a killed agent costs time, never an instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from cell import events as ev
from cell import lifecycle as lc
from cell.agent_link import AgentLink
from cell.core import CellCore, CoreSettings
from cell.hosts import HostState
from cell.leases import LeaseSettings
from cell.metrics import CellMetrics
from cell.placement import HostView, Policy
from cell.publisher import Publisher
from cell.records import CellInstance, InstanceSpec, from_row, to_row
from cell.request_claims import SweepSettings
from fedlib.networks import ProviderNetwork
from fedrpc import failpoints
from replication.cell_records import CellRecords, HostRow

log = logging.getLogger(__name__)

# Bounded so a slow store cannot grow the controller's memory; overflow drops log lines, never records.
_ACTION_LOG_QUEUE = 10_000
MAC_SEQUENCE = "mac_sequence"
# MACs reserved per high-water write: one extra write per 1,024 builds; a restart skips at most that many
# of the cell's 2^24.
MAC_BLOCK = 1024


@dataclass(frozen=True)
class ControllerSettings:
    cell_id: str
    site_id: str
    region: str
    policy: Policy = Policy.SPREAD
    host_grace_ms: int = 3_000  # fast detection: out of placement after this much silence
    build_timeout_ms: int = 120_000
    desired_every_s: float = 5.0
    directory_every_s: float = 10.0  # re-assert of the cell's directory row (one tiny row per cell)
    # The full re-assert of every live instance's index and listing rows (cell.reassert): one sweep per
    # period, never faster than the rate limit (rows/s).
    reassert_period_s: float = 300.0
    reassert_rows_per_s: float = 200.0
    # Beside it, the rows of instances changed within the window (deletes included) are written again
    # every `recent_every_s`: a short cut, the common case, heals in seconds rather than a period.
    recent_every_s: float = 30.0
    recent_window_ms: int = 15 * 60_000
    leases: LeaseSettings = field(default_factory=LeaseSettings)  # host leases and fencing (cell.leases)
    # Duplicates of one request id, settled by the cells (cell.request_claims).
    claim_sweep: SweepSettings = field(default_factory=SweepSettings)
    networks: tuple[ProviderNetwork, ...] = ()  # the cell's provider networks (fedlib.networks)

    def core(self) -> CoreSettings:
        return CoreSettings(self.cell_id, self.policy, self.host_grace_ms, self.build_timeout_ms, self.leases,
                            self.networks)  # fmt: skip


class CellController:
    def __init__(
        self,
        settings: ControllerSettings,
        records: CellRecords,
        publisher: Publisher,
        agents: AgentLink,
        clock_ms: Callable[[], int],
        metrics: CellMetrics,
    ) -> None:
        self.settings = settings
        self._records, self._publisher, self.agents = records, publisher, agents
        self._now, self.metrics = clock_ms, metrics
        self._lock = asyncio.Lock()
        self.core = CellCore(settings.core())
        self._watchers: dict[str, set[asyncio.Queue[tuple[CellInstance, str]]]] = {}
        self._action_log: asyncio.Queue[ev.LogEntry] = asyncio.Queue(_ACTION_LOG_QUEUE)
        self._mac_reserved = 0  # the MAC sequence's stored high-water mark (see _reserve_macs)

    # -- start-up -------------------------------------------------------------------------------------
    async def load(self) -> None:
        """Rebuilds memory from the cell keyspace: the controller may have been SIGKILLed at any point."""
        hosts = [
            HostState(r.host_id, r.libvirt_uri, r.vcpus, r.memory_mb, r.disk_gb,
                      r.cpu_allocation_ratio, r.memory_allocation_ratio, r.disabled)
            for r in await self._records.load_hosts()
        ]  # fmt: skip
        instances = [from_row(row) for row in await self._records.load_instances()]
        drained = self.core.drained
        self.core = CellCore.restore(self.settings.core(), hosts, instances, self._now())
        self.core.drained = drained
        # Rows name the MACs of live guests and of those deleted within the retention; the mark covers
        # the rest (older deletes, and MACs a step used whose write then failed or timed out).
        self._mac_reserved = await self._records.high_water(MAC_SEQUENCE)
        self.core.raise_mac_floor(self._mac_reserved)
        for inst in instances:
            if inst.record.state is not lc.State.DELETED:
                self._publisher.instance_changed(inst)
        log.info("cell %s loaded %d hosts and %d instances",
                 self.settings.cell_id, len(hosts), len(instances))  # fmt: skip

    # -- reads ----------------------------------------------------------------------------------------
    @property
    def drained(self) -> bool:
        return self.core.drained

    @drained.setter
    def drained(self, value: bool) -> None:
        self.core.drained = value

    def find(self, instance_id: str, tenant: str) -> CellInstance:
        return self.core.find(instance_id, tenant)

    def observed(self, inst: CellInstance) -> lc.ObservedStatus:
        return self.core.observed(inst, self._now())

    def instances_of(self, tenant: str) -> list[CellInstance]:
        return self.core.instances_of(tenant)

    def host_views(self) -> list[HostView]:
        return self.core.host_views(self._now())

    def now_ms(self) -> int:
        return self._now()

    # -- changes --------------------------------------------------------------------------------------
    async def build(self, spec: InstanceSpec) -> CellInstance:
        return _result(await self.handle(ev.BuildRequested(spec)))

    async def request(self, instance_id: str, tenant: str, event: lc.Event, reason: str = "") -> CellInstance:
        return _result(await self.handle(ev.UserRequested(instance_id, tenant, event, reason)))

    async def handle(self, event: ev.Event) -> ev.Ready:
        """One step: decide, persist, advance under the lock; then carry out the rest outside it."""
        async with self._lock:
            started = time.perf_counter()
            ready = self.core.step(event, self._now())
            if isinstance(event, ev.BuildRequested) and ready.rows:
                self.metrics.placement_seconds.labels(self.settings.cell_id).observe(
                    time.perf_counter() - started
                )
            try:
                await self._reserve_macs(ready.next_mac)
                await self._persist(ready)
            except BaseException:
                self.core.burn_macs(ready)
                raise
            if isinstance(event, ev.BuildRequested):
                failpoints.hit(f"cell.{self.settings.cell_id}.build-persisted")
            self.core.advance(ready)
        self._carry_out(ready)
        return ready

    async def _reserve_macs(self, needed: int) -> None:
        """The MAC sequence's high-water mark is raised, a block at a time, before any row naming a MAC
        past it is written: a restart never hands one out again, even after every row naming it aged out."""
        if needed > self._mac_reserved:
            reserved = needed + MAC_BLOCK
            await self._records.raise_high_water(MAC_SEQUENCE, reserved)
            self._mac_reserved = reserved

    async def _persist(self, ready: ev.Ready) -> None:
        writes = [self._records.put_instance(to_row(inst)) for inst in ready.rows]
        writes += [self._records.put_host(_host_row(h, ready.now_ms)) for h in ready.host_rows]
        if writes:
            await asyncio.gather(*writes)

    def _carry_out(self, ready: ev.Ready) -> None:
        for inst, reason in ready.notify:
            self._notify(inst, reason)
        for entry in ready.log:
            try:
                self._action_log.put_nowait(entry)
            except asyncio.QueueFull:
                log.warning("action log queue full; dropping a line for %s", entry.instance_id)
        for inst in ready.publish:
            self._publisher.instance_changed(inst)
        for grant in ready.leases:  # before any desired state: the agent acts only under a lease
            self.agents.lease(grant, self.settings.leases)
        for host_id in ready.lease_lost:
            self.agents.lease_lost(host_id, "the lease expired, was revoked or is not current")
        for host_id in ready.desired_for:
            self.push_desired(host_id, ready.now_ms)
        for failure in ready.failures:
            self.metrics.agent_errors.labels(self.settings.cell_id, failure.call or "unknown").inc()
        for finished in ready.builds_finished:
            self.metrics.build_seconds.labels(self.settings.cell_id, finished.outcome).observe(
                finished.seconds
            )

    def push_desired(self, host_id: str, now_ms: int) -> None:
        self.agents.desired_state(
            host_id, self.core.on_host(host_id), now_ms, self.core.superseded_for(host_id)
        )

    async def write_action_log(self) -> None:
        """Runs for the controller's life: the action log is written here, never on the request path."""
        while True:
            entry = await self._action_log.get()
            try:
                await self._records.append_event(
                    entry.instance_id, entry.at_ms, entry.reason, entry.status, entry.detail, entry.request_id
                )
            except Exception as exc:  # best effort; the record is the truth
                log.warning("action log write failed for %s: %s", entry.instance_id, exc)

    # -- watchers -------------------------------------------------------------------------------------
    def _notify(self, inst: CellInstance, reason: str) -> None:
        for queue in self._watchers.get(inst.spec.instance_id, ()):
            if not queue.full():
                queue.put_nowait((inst, reason))

    async def watch(self, instance_id: str, tenant: str) -> AsyncIterator[tuple[CellInstance, str]]:
        inst = self.find(instance_id, tenant)
        queue: asyncio.Queue[tuple[CellInstance, str]] = asyncio.Queue(256)
        self._watchers.setdefault(instance_id, set()).add(queue)
        try:
            yield inst, "current state"
            while inst.record.state is not lc.State.DELETED:
                inst, reason = await queue.get()
                yield inst, reason
        finally:
            self._watchers[instance_id].discard(queue)
            if not self._watchers[instance_id]:
                del self._watchers[instance_id]


def _result(ready: ev.Ready) -> CellInstance:
    if ready.result is None:  # every build and user request step sets it; a None is a core bug
        raise RuntimeError("the cell core answered a request without a result")
    return ready.result


def _host_row(h: HostState, now_ms: int) -> HostRow:
    return HostRow(h.host_id, h.vcpus, h.memory_mb, h.disk_gb, h.cpu_allocation_ratio,
                   h.memory_allocation_ratio, h.libvirt_uri, h.disabled, now_ms)  # fmt: skip
