"""The cell as one pure step (raft's RawNode): `step(event, now)` decides, `advance(ready)` commits.

`step` reads the core's state and returns a `Ready` batch (cell.events) without changing anything: the
new instance versions, the new capacity ledger, host table entries, placement views, the hosts whose
desired state changed, index publishes, watcher updates and action-log lines. The controller persists
`ready.rows`, and only when that succeeded calls `advance(ready)`; a failed write therefore leaves the
core as it was, with no claim to release by hand. No I/O, no clock, no asyncio: time comes in as `now_ms`.

The core owns the capacity ledger, the host table and, per host, the placement view, kept up to date
incrementally: a change rebuilds the views of the hosts it touched, a tick re-reads liveness, so a build
at 10,000 hosts costs one placement pass and no view construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from cell import events as ev
from cell import lifecycle as lc
from cell.hosts import HostState, HostTable, is_up
from cell.ipam import DEFAULT_QUARANTINE_MS, AddressRecord, AddressTxn, Allocations
from cell.leases import LeaseSettings, LeaseState, check_evacuation, lease_state, may_renew, next_generation
from cell.placement import CapacityLedger, Claim, HostCapacity, HostView, PlacementRequest, Policy, place
from cell.records import CellInstance, Port
from fedlib.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from fedlib.macs import mac_for
from fedlib.names import shown
from fedlib.networks import ProviderNetwork, check_requested, default_network


@dataclass(frozen=True)
class CoreSettings:
    cell_id: str = ""
    policy: Policy = Policy.SPREAD
    host_grace_ms: int = 3_000  # fast detection: out of placement after this much silence
    build_timeout_ms: int = 120_000
    leases: LeaseSettings = field(default_factory=LeaseSettings)
    # The cell's provider networks (fedlib.networks): every build gets one NIC on each it asks for, or on
    # the default one. None declared: instances have no NIC (a cell that only runs batch work).
    networks: tuple[ProviderNetwork, ...] = ()
    address_quarantine_ms: int = DEFAULT_QUARANTINE_MS


class CellCore:
    def __init__(self, settings: CoreSettings) -> None:
        self.settings = settings
        self.hosts = HostTable(settings.host_grace_ms)
        self.ledger = CapacityLedger()
        self.drained = False
        self._instances: dict[str, CellInstance] = {}
        self._views: dict[str, HostView] = {}
        self._on_host: dict[str, set[str]] = {}  # host id -> ids of instances placed there
        self._building: set[str] = set()  # ids in BUILDING: what a tick checks for timeouts
        self._superseded: dict[str, int] = {}  # id -> generation, for instances evacuated at least once
        self.ipam = Allocations({n.name: n for n in settings.networks}, settings.address_quarantine_ms)
        self.next_mac = 0  # the cell's MAC sequence (fedlib.macs): never handed out twice

    @classmethod
    def restore(
        cls,
        settings: CoreSettings,
        hosts: Iterable[HostState],
        instances: Iterable[CellInstance],
        restored_at_ms: int = 0,
    ) -> CellCore:
        """The core as the cell keyspace describes it (after a restart, which may have been a SIGKILL at
        any point). Hosts read as down until their agents connect again. Leases are not stored: every
        host counts as renewed at `restored_at_ms` (cell.leases: a restart delays evacuation, never
        hastens it)."""
        core = cls(settings)
        hosts = [replace(h, lease_renewed_ms=restored_at_ms) for h in hosts]
        instances = list(instances)
        for host in hosts:
            core.hosts.upsert(host)
        claims = [
            Claim(i.spec.instance_id, i.record.host_id, i.spec.flavor.name, i.spec.flavor.resources,
                  i.spec.spread_group or None)
            for i in instances
            if i.holds_claim and i.record.host_id in core.hosts.ids()
        ]  # fmt: skip
        core.ledger = CapacityLedger((_capacity_of(h) for h in hosts), claims)
        _check_ports_declared(settings.networks, instances)
        # Addresses and MACs come back from the records alone: one allocated by a build whose record was
        # never written was never seen by a guest, so forgetting it neither leaks nor doubles anything.
        core.ipam = Allocations.from_records(
            settings.networks, _address_records(instances), quarantine_ms=settings.address_quarantine_ms
        )
        core.next_mac = 1 + max((p.mac_sequence for i in instances for p in i.ports), default=-1)
        for inst in instances:
            core._install(inst)
        core._views = {h.host_id: core._view(core.ledger, h, 0) for h in hosts}
        return core

    # -- reads ----------------------------------------------------------------------------------------
    def find(self, instance_id: str, tenant: str) -> CellInstance:
        inst = self._instances.get(instance_id)
        # Another tenant's instance is reported exactly like a missing one: no existence leak.
        if inst is None or (tenant and inst.spec.tenant != tenant):
            raise NotFound(f"instance {instance_id} not found", field="instance_id")
        return inst

    def get(self, instance_id: str) -> CellInstance | None:
        return self._instances.get(instance_id)

    def all_instances(self) -> list[CellInstance]:
        return list(self._instances.values())

    def instances_of(self, tenant: str) -> list[CellInstance]:
        return [i for _, i in sorted(self._instances.items()) if not tenant or i.spec.tenant == tenant]

    def on_host(self, host_id: str) -> list[CellInstance]:
        return [self._instances[i] for i in sorted(self._on_host.get(host_id, ()))]

    def observed(self, inst: CellInstance, now_ms: int) -> lc.ObservedStatus:
        return lc.observed_status(
            inst.record, self.hosts.last_seen(inst.record.host_id), now_ms, self.settings.host_grace_ms
        )

    def host_views(self, now_ms: int) -> list[HostView]:
        """Every host's placement view with liveness as of `now_ms` (only a flipped host is rebuilt)."""
        return [self._fresh(v, now_ms) for _, v in sorted(self._views.items())]

    def free_addresses(self, now_ms: int) -> dict[str, int]:
        """Per provider network with an IPv4 pool, the addresses a build could get now (a network without
        one never runs out: its guests' IPv6 addresses come from their MACs)."""
        return {n.name: self.ipam.free_count(n.name, now_ms) for n in self.settings.networks if n.ipv4}

    def recently_changed(self, now_ms: int, window_ms: int) -> list[CellInstance]:
        return [i for i in self._instances.values() if now_ms - i.record.updated_ms <= window_ms]

    # -- the step -------------------------------------------------------------------------------------
    def step(self, event: ev.Event, now_ms: int) -> ev.Ready:
        """Decides what `event` does at `now_ms`. Raises a fedlib error for a request it refuses."""
        batch = _Batch(self, now_ms)
        if isinstance(event, ev.BuildRequested):
            batch.build(event)
        elif isinstance(event, ev.UserRequested):
            batch.user_request(event)
        elif isinstance(event, ev.HostConnected):
            batch.host_connected(event)
        elif isinstance(event, ev.HostHeartbeat):
            batch.heartbeat(event)
        elif isinstance(event, ev.DomainReported):
            if batch.lease_held(event.host_id):  # a fenced host's events are about guests it stops
                batch.seen(event.host_id)
                batch.report(event.instance_id, event.host_id, lc.HostReported(event.power),
                             f"host event: {event.detail}")  # fmt: skip
        elif isinstance(event, ev.HostDisconnected):
            batch.disconnected(event.host_id)
        elif isinstance(event, ev.HostDisabledSet):
            batch.set_disabled(event.host_id, event.disabled)
        elif isinstance(event, ev.EvacuationRequested):
            batch.evacuate(event)
        else:
            batch.tick()
        return batch.ready()

    def advance(self, ready: ev.Ready) -> None:
        """Installs what a step decided, once its rows are stored."""
        for inst in ready.rows:
            self._install(inst)
        for host in ready.hosts:
            self.hosts.upsert(host)
        if ready.ledger is not None:
            self.ledger = ready.ledger
        if ready.addresses is not None:
            self.ipam.commit(ready.addresses)
        self.burn_macs(ready)
        self._views.update(ready.views)

    def raise_mac_floor(self, floor: int) -> None:
        """No MAC below `floor` is handed out (the stored high-water mark, after a restart)."""
        self.next_mac = max(self.next_mac, floor)

    def burn_macs(self, ready: ev.Ready) -> None:
        """MACs a step handed out are used up whether or not its rows were stored: a write that timed out
        may still have landed, and a MAC is cheap (2^24 per cell) where a duplicate on a segment is not."""
        self.next_mac = max(self.next_mac, ready.next_mac)

    # -- internals ------------------------------------------------------------------------------------
    def _install(self, inst: CellInstance) -> None:
        iid, rec = inst.spec.instance_id, inst.record
        old = self._instances.get(iid)
        if old is not None and old.record.host_id and old.record.host_id != rec.host_id:
            self._on_host.get(old.record.host_id, set()).discard(iid)
        self._instances[iid] = inst
        if rec.host_id:
            self._on_host.setdefault(rec.host_id, set()).add(iid)
        if rec.state is lc.State.BUILDING:
            self._building.add(iid)
        else:
            self._building.discard(iid)
        if rec.generation > 1:
            self._superseded[iid] = rec.generation

    def _view(self, ledger: CapacityLedger, host: HostState, now_ms: int) -> HostView:
        up = is_up(host, now_ms, self.settings.host_grace_ms)
        return ledger.view(host.host_id, up=up, disabled=host.disabled)

    def _fresh(self, view: HostView, now_ms: int) -> HostView:
        host = self.hosts.get(view.host_id)
        up = host is not None and is_up(host, now_ms, self.settings.host_grace_ms)
        return view if view.up == up else replace(view, up=up)

    def building_ids(self) -> frozenset[str]:
        return frozenset(self._building)

    def lease_state(self, host_id: str, now_ms: int) -> LeaseState:
        host = self.hosts.get(host_id)
        if host is None:
            raise NotFound(f"host {host_id} not found in cell {self.settings.cell_id}", field="host")
        return lease_state(host, self.settings.leases, now_ms)

    def superseded_for(self, host_id: str) -> list[tuple[str, int]]:
        """Instances evacuated at least once whose current copy is not on `host_id`, with their
        generation: any domain of theirs on that host is a stale copy, destroyed before it reports."""
        out = []
        for iid, generation in sorted(self._superseded.items()):
            rec = self._instances[iid].record
            if rec.host_id != host_id or rec.state is lc.State.DELETED:
                out.append((iid, generation))
        return out


class _Batch:
    """One step's decisions, accumulated over an overlay of the core's state (which stays untouched)."""

    def __init__(self, core: CellCore, now_ms: int) -> None:
        self.core, self.now = core, now_ms
        self.ledger = core.ledger
        self.ledger_changed = False
        self.changed: dict[str, CellInstance] = {}
        self.hosts: dict[str, HostState] = {}
        self.host_rows: list[HostState] = []
        self.views: dict[str, HostView] = {}
        self.touched: set[str] = set()  # hosts whose view must be rebuilt
        self.result: CellInstance | None = None
        self.log: list[ev.LogEntry] = []
        self.notify: list[tuple[CellInstance, str]] = []
        self.failures: list[ev.Failure] = []
        self.desired_for: dict[str, None] = {}  # ordered set
        self.publish: list[CellInstance] = []
        self.finished: list[ev.BuildFinished] = []
        self.leases: list[ev.LeaseGrant] = []
        self.lease_lost: list[str] = []
        self.host_result: HostState | None = None
        self.evacuation: ev.Evacuation | None = None
        self._addresses: AddressTxn | None = None  # this step's address changes, begun on the first
        self.next_mac = core.next_mac

    def instance(self, instance_id: str) -> CellInstance | None:
        return self.changed.get(instance_id) or self.core.get(instance_id)

    def host(self, host_id: str) -> HostState | None:
        return self.hosts.get(host_id) or self.core.hosts.get(host_id)

    # -- builds and user requests ---------------------------------------------------------------------
    def build(self, event: ev.BuildRequested) -> None:
        spec = event.spec
        existing = self.core.get(spec.instance_id)
        if existing is not None:
            if existing.spec.tenant == spec.tenant and existing.spec.same_request(spec):
                self.result = existing  # idempotent on the instance id
                return
            raise AlreadyExists(
                f"instance {spec.instance_id} exists with a different request", field="instance_id"
            )
        if self.core.drained:
            raise Unavailable(f"cell {self.core.settings.cell_id} is drained and takes no new instances")
        # Addresses first: a full pool is a cell-wide refusal, whatever host would have had room.
        ports = self._ports(spec.instance_id, self._networks_of(spec.networks))
        group = spec.spread_group or None
        host_id = self._place(PlacementRequest(spec.flavor, self.core.settings.policy, group))
        self.ledger, _ = self.ledger.claim(host_id, spec.instance_id, spec.flavor, group)
        self.ledger_changed = True
        self.touched.add(host_id)
        record, actions = lc.create(spec.instance_id, host_id, self.now)
        self.result = self._record(CellInstance(spec, record, holds_claim=True, ports=ports), actions,
                                   "build requested", spec.request_id)  # fmt: skip

    def _networks_of(self, asked: tuple[str, ...]) -> tuple[str, ...]:
        declared = self.core.settings.networks
        if not asked:
            return (default_network(declared).name,) if declared else ()
        names = {n.name for n in declared}
        for i, name in enumerate(check_requested(asked)):
            if name not in names:
                raise InvalidArgument(
                    f"networks[{i}]: cell {self.core.settings.cell_id} has no network {shown(name)}",
                    field=f"networks[{i}]",
                )
        return asked

    def _ports(self, instance_id: str, networks: tuple[str, ...]) -> tuple[Port, ...]:
        ports = []
        for name in networks:
            ipv4 = self._address_txn().allocate(instance_id, name)
            mac = mac_for(self.core.settings.cell_id, self.next_mac)
            ports.append(Port(name, mac, self.next_mac, ipv4))
            self.next_mac += 1
        return tuple(ports)

    def _address_txn(self) -> AddressTxn:
        if self._addresses is None:
            self._addresses = self.core.ipam.begin(self.now)
        return self._addresses

    def _place(self, request: PlacementRequest) -> str:
        """Placement over the cached views; a chosen host that went silent since the last tick sends
        the decision back over views re-read now (rare: at most one tick's worth of staleness)."""
        views = list(self.core._views.values())
        chosen = place(request, views).host_id
        host = self.host(chosen) if chosen else None
        if host is not None and is_up(host, self.now, self.core.settings.host_grace_ms):
            return host.host_id
        fresh = [self.core._fresh(v, self.now) for v in views]
        self.views.update((v.host_id, v) for v in fresh if v is not self.core._views[v.host_id])
        return place(request, fresh).require()

    def user_request(self, event: ev.UserRequested) -> None:
        inst = self.core.find(event.instance_id, event.tenant)
        request = event.request
        host_id = inst.record.host_id
        if request.is_request and not isinstance(request, lc.Delete) and host_id:
            host = self.host(host_id)
            if host is None or not is_up(host, self.now, self.core.settings.host_grace_ms):
                raise Unavailable(
                    f"host {host_id} of instance {event.instance_id} is not reporting; try again later"
                )
        self.result = self.transition(inst, request, event.reason or f"{request.kind} requested")

    # -- what hosts report ----------------------------------------------------------------------------
    def host_connected(self, event: ev.HostConnected) -> None:
        known = self.core.hosts.get(event.host.host_id)
        host = replace(
            event.host,
            disabled=known.disabled if known else event.host.disabled,
            connected=True,
            last_seen_ms=self.now,
            # Every connection is a new lease: whatever the old stream held is dead.
            lease_generation=next_generation(known.lease_generation if known else 0, self.now),
            lease_renewed_ms=self.now,
            lease_revoked=False,
        )
        self.hosts[host.host_id] = host
        self.leases.append(ev.LeaseGrant(host.host_id, host.lease_generation, 0))
        self.host_rows.append(host)
        self.ledger = self.ledger.with_host(_capacity_of(host))
        self.ledger_changed = True
        self.touched.add(host.host_id)
        self.observe(host.host_id, event.domains, {})
        self.desired_for[host.host_id] = None

    def lease_held(self, host_id: str) -> bool:
        host = self.host(host_id)
        return host is not None and may_renew(host, 0, self.core.settings.leases, self.now)

    def heartbeat(self, event: ev.HostHeartbeat) -> None:
        """Renews the host's lease, then takes in its picture. A heartbeat under a lease that expired,
        was revoked or is not the current one renews nothing and counts for nothing: the host is told
        its lease is lost, fences, and must connect again."""
        host = self.host(event.host_id)
        if host is None:
            return
        if not may_renew(host, event.lease_generation, self.core.settings.leases, self.now):
            self.lease_lost.append(host.host_id)
            return
        self.hosts[host.host_id] = replace(host, lease_renewed_ms=self.now)
        self.leases.append(ev.LeaseGrant(host.host_id, host.lease_generation, event.seq))
        self.seen(host.host_id)
        self.observe(host.host_id, event.domains, event.failures)

    def set_disabled(self, host_id: str, disabled: bool) -> None:
        host = self.host(host_id)
        if host is None:
            raise NotFound(f"host {host_id} not found in cell {self.core.settings.cell_id}", field="host")
        new = replace(host, disabled=disabled)
        self.hosts[host_id], self.host_result = new, new
        if new != host:
            self.host_rows.append(new)
            self.touched.add(host_id)

    def evacuate(self, event: ev.EvacuationRequested) -> None:
        """Rebuilds every instance of a lost host on other hosts of this cell, each as its next
        generation. Placement runs per instance over views kept current within this step (each claim
        updates its host's view), never onto the lost host. An instance nothing fits stays, reported."""
        host = self.host(event.host_id)
        if host is None:
            raise NotFound(
                f"host {event.host_id} not found in cell {self.core.settings.cell_id}", field="host"
            )
        check_evacuation(host, self.core.settings.leases, self.now, force=event.force,
                         powered_off=event.powered_off)  # fmt: skip
        revoked = replace(host, lease_revoked=True, connected=False)
        self.hosts[host.host_id], self.host_result = revoked, revoked
        self.touched.add(host.host_id)
        self.desired_for[host.host_id] = None  # if it has a stream still, it learns what left it
        views = {v.host_id: v for v in self.core.host_views(self.now) if v.host_id != host.host_id}
        moved: list[ev.Moved] = []
        stayed: list[tuple[str, str]] = []
        for inst in self.core.on_host(host.host_id):
            rec, iid = inst.record, inst.spec.instance_id
            if rec.state is lc.State.DELETED:
                continue
            target: str | None = None
            if lc.needs_host_after_evacuation(rec.state):
                group = inst.spec.spread_group or None
                request = PlacementRequest(inst.spec.flavor, self.core.settings.policy, group,
                                           avoid_hosts=frozenset({host.host_id}))  # fmt: skip
                try:
                    target = place(request, list(views.values())).require()
                except ResourceExhausted as exc:
                    stayed.append((iid, exc.message))
                    continue
                self.ledger = self.ledger.release(iid)
                self.ledger, _ = self.ledger.claim(target, iid, inst.spec.flavor, group)
                self.ledger_changed = True
                self.touched.add(target)
                target_host = self.host(target)
                if target_host is not None:
                    views[target] = self.core._view(self.ledger, target_host, self.now)
            record, actions = lc.evacuate(rec, target, self.now)
            holds = target is not None
            if not holds:
                self.ledger = self.ledger.release(iid)
                self.ledger_changed = True
            reason = f"evacuated from host {host.host_id}" + (f" to {target}" if target else "")
            self._record(replace(inst, record=record, holds_claim=holds), actions, reason)
            moved.append(ev.Moved(iid, target, record.generation, record.state))
        self.evacuation = ev.Evacuation(host.host_id, tuple(moved), tuple(stayed))

    def seen(self, host_id: str) -> None:
        host = self.host(host_id)
        if host is None:
            return
        self.hosts[host_id] = replace(host, connected=True, last_seen_ms=self.now)
        view = self.core._views.get(host_id)
        if view is None or not view.up:
            self.touched.add(host_id)

    def disconnected(self, host_id: str) -> None:
        host = self.host(host_id)
        if host is not None:
            self.hosts[host_id] = replace(host, connected=False)
            self.touched.add(host_id)

    def observe(
        self, host_id: str, domains: Mapping[str, ev.Observed], failures: Mapping[str, ev.Failure]
    ) -> None:
        """Level-triggered: every instance placed on this host is compared with what the host runs, the
        reboots it applied and what it failed to do."""
        for inst in self.core.on_host(host_id):
            iid = inst.spec.instance_id
            if inst.record.state is lc.State.DELETED:
                continue
            seen = domains.get(iid)
            if seen is not None and 0 < seen.generation < inst.record.generation:
                seen = None  # a stale copy (the host destroys it): the current one has no domain here
            power = seen.power if seen else lc.PowerState.NO_DOMAIN
            self.report(iid, host_id, lc.HostReported(power), f"host reports {power.value}")
            wanted_reboot = lc.reboot_generation(inst.record)
            if seen and wanted_reboot and seen.reboot_generation >= wanted_reboot:
                self.report(iid, host_id, lc.RebootDone(), "host reports the reboot done")
            failure = failures.get(iid)
            if failure is not None:
                self.failed(iid, host_id, failure)

    def failed(self, instance_id: str, host_id: str, failure: ev.Failure) -> None:
        """A failure counts only against the state it was an attempt at; anything older is stale."""
        inst = self.instance(instance_id)
        if inst is None or inst.record.host_id != host_id:
            return
        state, reason = inst.record.state, f"host reported failure: {failure.error}"
        event: lc.Event | None = None
        if state is lc.State.BUILDING and failure.wanted is lc.PowerState.RUNNING:
            event = lc.BuildFailed(lc.Fault("BUILD_FAILED", failure.error))
        elif state is lc.State.REBOOTING and failure.reboot_generation == lc.reboot_generation(inst.record):
            event = lc.CommandFailed(lc.Fault("REBOOT_FAILED", failure.error))
        elif state is lc.State.DELETING and failure.wanted is lc.PowerState.NO_DOMAIN:
            event = lc.CommandFailed(lc.Fault("DELETE_FAILED", failure.error))
        if event is not None and self.transition(inst, event, reason) is not inst:
            self.failures.append(failure)

    def report(self, instance_id: str, host_id: str, event: lc.Event, reason: str) -> None:
        inst = self.instance(instance_id)
        if inst is None or inst.record.host_id != host_id:
            return  # not ours on this host: the agent's orphan policy deals with it
        self.transition(inst, event, reason)

    # -- time -----------------------------------------------------------------------------------------
    def tick(self) -> None:
        limit = self.core.settings.build_timeout_ms
        for iid in sorted(self.core.building_ids()):
            inst = self.core.get(iid)
            if inst is None:
                continue
            # A rebuild after evacuation started when its record became BUILDING, not at the create.
            rec = inst.record
            started = inst.spec.created_ms if rec.generation == 1 else rec.updated_ms
            if self.now - started > limit:
                fault = lc.Fault("BUILD_TIMEOUT", f"the build did not finish within {limit // 1000}s")
                self.transition(inst, lc.BuildFailed(fault), "build timed out")
        for host_id, view in self.core._views.items():
            fresh = self.core._fresh(view, self.now)
            if fresh is not view:
                self.views[host_id] = fresh

    # -- the one place a transition happens -----------------------------------------------------------
    def transition(self, inst: CellInstance, event: lc.Event, reason: str) -> CellInstance:
        record, actions = lc.transition(inst.record, event, self.now)
        if record is inst.record:
            return inst
        holds = inst.holds_claim and not any(isinstance(a, lc.ReleaseCapacity) for a in actions)
        new = self._record(replace(inst, record=record, holds_claim=holds), actions, reason)
        first_build = inst.record.generation == 1
        if (
            first_build
            and inst.record.state is lc.State.BUILDING
            and record.state in (lc.State.ACTIVE, lc.State.ERROR)
        ):
            outcome = "active" if record.state is lc.State.ACTIVE else "error"
            took_s = max(0, record.updated_ms - inst.spec.created_ms) / 1000
            self.finished.append(ev.BuildFinished(outcome, took_s))
        return new

    def _record(
        self, inst: CellInstance, actions: tuple[lc.Action, ...], reason: str, request_id: str = ""
    ) -> CellInstance:
        rec = inst.record
        self.changed[inst.spec.instance_id] = inst
        if rec.state is lc.State.DELETED:  # its addresses wait out the quarantine, then are free again
            for port in inst.ports:
                self._address_txn().release(inst.spec.instance_id, port.network)
        self.notify.append((inst, reason))
        self.log.append(ev.LogEntry(inst.spec.instance_id, rec.updated_ms, reason, rec.state.value,
                                    rec.fault.message if rec.fault else "", request_id))  # fmt: skip
        for action in actions:
            if isinstance(action, lc.SendToAgent):  # the host must act: it gets its new desired state
                self.desired_for[action.host_id] = None
            elif isinstance(action, lc.ReleaseCapacity):
                claim = self.ledger.claims.get(action.instance_id)
                self.ledger = self.ledger.release(action.instance_id)
                self.ledger_changed = True
                if claim is not None:
                    self.touched.add(claim.host_id)
            elif isinstance(action, lc.PublishIndex):
                self.publish.append(inst)
        return inst

    def ready(self) -> ev.Ready:
        for host_id in self.touched:
            host = self.host(host_id)
            if host is not None and host_id in self.ledger.hosts:
                self.views[host_id] = self.core._view(self.ledger, host, self.now)
        return ev.Ready(
            now_ms=self.now,
            result=self.result,
            rows=tuple(self.changed.values()),
            hosts=tuple(self.hosts.values()),
            host_rows=tuple(self.host_rows),
            ledger=self.ledger if self.ledger_changed else None,
            views=self.views,
            log=tuple(self.log),
            notify=tuple(self.notify),
            failures=tuple(self.failures),
            desired_for=tuple(self.desired_for),
            publish=tuple(self.publish),
            builds_finished=tuple(self.finished),
            leases=tuple(self.leases),
            lease_lost=tuple(self.lease_lost),
            host_result=self.host_result,
            evacuation=self.evacuation,
            addresses=self._addresses,
            next_mac=self.next_mac,
        )


def _check_ports_declared(networks: Iterable[ProviderNetwork], instances: Iterable[CellInstance]) -> None:
    """A network still in use cannot be dropped from the declaration, nor its subnet moved from under
    the addresses its guests hold: the cell refuses to start rather than push NICs nobody can route."""
    declared = {n.name: n for n in networks}
    for inst in instances:
        if inst.record.state is lc.State.DELETED:
            continue
        for port in inst.ports:
            net = declared.get(port.network)
            if net is None:
                raise FailedPrecondition(
                    f"instance {inst.spec.instance_id} has a NIC on network {port.network}, which the "
                    "cell no longer declares; declare it again or delete the instance first",
                    field="networks",
                )
            if port.ipv4 is not None and (net.ipv4 is None or port.ipv4 not in net.ipv4.cidr):
                raise FailedPrecondition(
                    f"instance {inst.spec.instance_id} holds {port.ipv4} on network {port.network}, "
                    "outside the subnet now declared for it",
                    field="networks",
                )


def _address_records(instances: Iterable[CellInstance]) -> Iterable[AddressRecord]:
    for inst in instances:
        deleted_at = inst.record.updated_ms if inst.record.state is lc.State.DELETED else None
        for port in inst.ports:
            yield AddressRecord(inst.spec.instance_id, port.network, port.ipv4, deleted_at)


def _capacity_of(host: HostState) -> HostCapacity:
    return HostCapacity(
        host.host_id, host.vcpus, host.memory_mb, host.disk_gb,
        host.cpu_allocation_ratio, host.memory_allocation_ratio,
    )  # fmt: skip
