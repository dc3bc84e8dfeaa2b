"""The cell controller: the authority for its instances and hosts.

All state changes go through one asyncio lock: placement + claim + lifecycle transition + persist happen
as one step, so concurrent builds can never double-book a host, and versions are written in order. The
pure cores decide (cell.placement, cell.lifecycle); this class persists, then executes their actions:
commands to agents (cell.agent_link), index publishing (cell.publisher), watcher notifications.

Agents are level-triggered: on connect and every `desired_every_s` each host gets its full desired state,
so a lost command or a killed agent costs time, never an instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from cell import lifecycle as lc
from cell.agent_link import AgentLink
from cell.hosts import HostState, HostTable
from cell.metrics import CellMetrics
from cell.placement import CapacityLedger, HostCapacity, PlacementRequest, Policy, place
from cell.publisher import Publisher
from cell.records import CellInstance, InstanceSpec, from_row, to_row
from fedlib.errors import AlreadyExists, NotFound, Unavailable
from replication.cell_records import CellRecords

log = logging.getLogger(__name__)


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
    # Re-assert of the index and listing rows of instances changed within the window (see upkeep).
    index_every_s: float = 30.0
    index_window_ms: int = 15 * 60_000


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
        self._records, self._publisher, self._agents = records, publisher, agents
        self._now, self.metrics = clock_ms, metrics
        self._lock = asyncio.Lock()
        self._instances: dict[str, CellInstance] = {}
        self.hosts = HostTable(settings.host_grace_ms)
        self._ledger = CapacityLedger()
        self._watchers: dict[str, set[asyncio.Queue[tuple[CellInstance, str]]]] = {}
        self.drained = False

    # -- start-up -------------------------------------------------------------------------------------
    async def load(self) -> None:
        """Rebuilds memory from the cell keyspace: the controller may have been SIGKILLed at any point."""
        for host_row in await self._records.load_hosts():
            host = HostState(
                host_row.host_id, host_row.libvirt_uri, host_row.vcpus, host_row.memory_mb, host_row.disk_gb,
                host_row.cpu_allocation_ratio, host_row.memory_allocation_ratio, host_row.disabled,
            )  # fmt: skip
            self.hosts.upsert(host)
            self._ledger = self._ledger.with_host(_capacity_of(host))
        for row in await self._records.load_instances():
            inst = from_row(row)
            self._instances[inst.spec.instance_id] = inst
            if inst.holds_claim and inst.record.host_id and inst.record.host_id in self._ledger.hosts:
                self._ledger, _ = self._ledger.claim(
                    inst.record.host_id,
                    inst.spec.instance_id,
                    inst.spec.flavor,
                    inst.spec.spread_group or None,
                )
            if inst.record.state is not lc.State.DELETED:
                self._publisher.instance_changed(inst)
        log.info("cell %s loaded %d hosts and %d instances", self.settings.cell_id,
                 len(self.hosts.all()), len(self._instances))  # fmt: skip

    # -- reads ----------------------------------------------------------------------------------------
    def find(self, instance_id: str, tenant: str) -> CellInstance:
        inst = self._instances.get(instance_id)
        # Another tenant's instance is reported exactly like a missing one: no existence leak.
        if inst is None or (tenant and inst.spec.tenant != tenant):
            raise NotFound(f"instance {instance_id} not found", field="instance_id")
        return inst

    def observed(self, inst: CellInstance) -> lc.ObservedStatus:
        return lc.observed_status(
            inst.record, self.hosts.last_seen(inst.record.host_id), self._now(), self.settings.host_grace_ms
        )

    def instances_of(self, tenant: str) -> list[CellInstance]:
        return [i for k, i in sorted(self._instances.items()) if not tenant or i.spec.tenant == tenant]

    # -- builds ---------------------------------------------------------------------------------------
    async def build(self, spec: InstanceSpec) -> CellInstance:
        async with self._lock:
            existing = self._instances.get(spec.instance_id)
            if existing is not None:
                if existing.spec.tenant == spec.tenant and existing.spec.same_request(spec):
                    return existing  # idempotent on the instance id
                raise AlreadyExists(
                    f"instance {spec.instance_id} exists with a different request", field="instance_id"
                )
            if self.drained:
                raise Unavailable(f"cell {self.settings.cell_id} is drained and takes no new instances")
            now = self._now()
            started = asyncio.get_running_loop().time()
            host_id = self._place(spec, now)
            self._ledger, _ = self._ledger.claim(
                host_id, spec.instance_id, spec.flavor, spec.spread_group or None
            )
            self.metrics.placement_seconds.labels(self.settings.cell_id).observe(
                asyncio.get_running_loop().time() - started
            )
            record, actions = lc.create(spec.instance_id, host_id, now)
            inst = CellInstance(spec, record, holds_claim=True)
            try:
                await self._persist(inst, "build requested", spec.request_id)
            except Exception:
                self._ledger = self._ledger.release(spec.instance_id)
                raise
        self._execute(inst, actions)
        return inst

    def _place(self, spec: InstanceSpec, now: int) -> str:
        views = [
            self._ledger.view(h.host_id, up=self.hosts.is_up(h.host_id, now), disabled=h.disabled)
            for h in self.hosts.all()
            if h.host_id in self._ledger.hosts
        ]
        request = PlacementRequest(spec.flavor, self.settings.policy, spec.spread_group or None)
        return place(request, views).require()

    # -- user requests on existing instances ----------------------------------------------------------
    async def request(self, instance_id: str, tenant: str, event: lc.Event) -> CellInstance:
        async with self._lock:
            inst = self.find(instance_id, tenant)
            if event.is_request and not isinstance(event, lc.Delete):
                self._require_host_up(inst)
            return await self._apply(inst, event, f"{event.kind} requested")

    def _require_host_up(self, inst: CellInstance) -> None:
        host = inst.record.host_id
        if host and not self.hosts.is_up(host, self._now()):
            raise Unavailable(
                f"host {host} of instance {inst.spec.instance_id} is not reporting; try again later"
            )

    # -- the one place a transition happens -----------------------------------------------------------
    async def _apply(self, inst: CellInstance, event: lc.Event, reason: str) -> CellInstance:
        """Caller holds the lock."""
        record, actions = lc.transition(inst.record, event, self._now())
        if record is inst.record:
            return inst
        holds = inst.holds_claim and not any(isinstance(a, lc.ReleaseCapacity) for a in actions)
        new = CellInstance(inst.spec, record, holds)
        await self._persist(new, reason)
        self._execute(new, actions)
        if record.state in (lc.State.ACTIVE, lc.State.ERROR) and inst.record.state is lc.State.BUILDING:
            outcome = "active" if record.state is lc.State.ACTIVE else "error"
            self.metrics.build_seconds.labels(self.settings.cell_id, outcome).observe(
                max(0, record.updated_ms - inst.spec.created_ms) / 1000
            )
        return new

    async def _persist(self, inst: CellInstance, reason: str, request_id: str = "") -> None:
        await self._records.put_instance(to_row(inst))
        self._instances[inst.spec.instance_id] = inst
        self._notify(inst, reason)
        try:
            await self._records.append_event(
                inst.spec.instance_id, inst.record.updated_ms, reason, inst.record.state.value,
                inst.record.fault.message if inst.record.fault else "", request_id,
            )  # fmt: skip
        except Exception as exc:  # the action log is best effort; the record above is the truth
            log.warning("action log write failed for %s: %s", inst.spec.instance_id, exc)

    def _execute(self, inst: CellInstance, actions: tuple[lc.Action, ...]) -> None:
        for action in actions:
            if isinstance(action, lc.SendToAgent):
                self._agents.command(action.host_id, inst, action.command)
            elif isinstance(action, lc.ReleaseCapacity):
                self._ledger = self._ledger.release(action.instance_id)
            elif isinstance(action, lc.PublishIndex):
                self._publisher.instance_changed(inst)

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

    # -- capacity -------------------------------------------------------------------------------------
    def host_views(self) -> list:  # type: ignore[type-arg]
        now = self._now()
        return [
            self._ledger.view(h.host_id, up=self.hosts.is_up(h.host_id, now), disabled=h.disabled)
            for h in self.hosts.all()
            if h.host_id in self._ledger.hosts
        ]

    def register_host(self, host: HostState) -> HostState:
        known = self.hosts.get(host.host_id)
        merged = replace(host, disabled=known.disabled) if known else host
        self.hosts.upsert(merged)
        self._ledger = self._ledger.with_host(_capacity_of(merged))
        return merged

    def update_instance_in_memory(self, inst: CellInstance) -> None:
        self._instances[inst.spec.instance_id] = inst

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    @property
    def agents(self) -> AgentLink:
        return self._agents

    @property
    def records(self) -> CellRecords:
        return self._records

    async def apply_locked(self, inst: CellInstance, event: lc.Event, reason: str) -> CellInstance:
        return await self._apply(inst, event, reason)

    def all_instances(self) -> list[CellInstance]:
        return list(self._instances.values())

    def all_by_id(self) -> dict[str, CellInstance]:
        return self._instances

    def now_ms(self) -> int:
        return self._now()


def _capacity_of(host: HostState) -> HostCapacity:
    return HostCapacity(
        host.host_id,
        host.vcpus,
        host.memory_mb,
        host.disk_gb,
        host.cpu_allocation_ratio,
        host.memory_allocation_ratio,
    )
