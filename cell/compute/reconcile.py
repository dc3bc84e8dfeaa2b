"""Level-triggered reconcile on one compute host: (desired, observed, first-seen, time) -> plan.

Pure (Kubernetes controller style): the agent loop reads the desired set from the controller and the
domains from libvirt, calls `reconcile`, executes the actions in order, stores `orphans_first_seen` for
the next pass, and owns retries, backoff, metrics and logs. Same inputs, same plan.

Ownership and orphan policy:
- A domain without cellfed metadata (`instance_id is None`), or whose metadata names another cell, is
  not ours: never touched, only listed in `foreign_domains` so the agent can subtract what it uses from
  the capacity it reports.
- A cellfed domain the desired set names ABSENT (the instance is DELETING or ERROR) is torn down at once.
- A cellfed domain the desired set does not name is an orphan: reported on every pass, and destroyed and
  undefined only once a desired set still current more than `grace_ms` after it was first seen lacks it.
  Its age runs on `DesiredState.as_of_ms`, not `now_ms`, so an agent cut off from the controller (and so
  holding a stale set) never ages an orphan into deletion. At most `max_destroys` per pass, oldest
  first, so a bad desired set costs a few domains and a stream of reports, not the host.
- Two cellfed domains naming one wanted instance: reported, neither touched; a person must choose.
- Generations (bumped when an operator evacuates a lost host): a domain whose metadata generation is
  below the wanted one, or below the one the desired set lists for an instance that now lives on
  another host (`superseded`), is a stale copy: torn down at once, no grace, and a wanted instance is
  then built again from its current spec. That is what keeps a host that comes back after an
  evacuation from running a second copy.

Reboots are desired state too: each reboot the controller asks for bumps the instance's
`reboot_generation`; a running domain whose newest applied generation (`rebooted`, kept by the agent)
is older is rebooted once. A domain that is not running satisfies it by starting (that is a fresh boot).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from fedlib.errors import InvalidArgument
from fedlib.flavor import Flavor
from fedlib.states import PowerState


class DesiredPower(enum.Enum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    ABSENT = "ABSENT"  # known to the controller and wanted gone


@dataclass(frozen=True)
class DesiredInstance:
    instance_id: str
    power: DesiredPower
    flavor: Flavor
    spec_version: int
    built: bool = False  # built before, so a missing domain is a loss to report, not a first build
    reboot_generation: int = 0  # the newest reboot the controller asked for; 0: none
    generation: int = 1  # which copy is current; a domain with an older one is stale


@dataclass(frozen=True)
class DesiredState:
    instances: tuple[DesiredInstance, ...]
    # Agent clock: the latest moment the agent knew this set to be current. With the Agent API stream
    # (ordered; the controller pushes a new set before anything that depends on it) that is when the
    # latest controller message arrived while this set was the newest. Never the controller's clock.
    as_of_ms: int
    cell_id: str | None = None  # this host's cell; a domain whose metadata names another cell is foreign
    # Instances that live elsewhere now (evacuated), with their current generation: older copies here go.
    superseded: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedDomain:
    uuid: str
    power: PowerState
    instance_id: str | None = None  # from cellfed metadata; None: not a cellfed domain
    spec_version: int | None = None  # from cellfed metadata
    cell: str | None = None  # from cellfed metadata
    generation: int | None = None  # from cellfed metadata; None: not recorded (the first generation)

    def __post_init__(self) -> None:
        if self.power is PowerState.NO_DOMAIN:
            raise InvalidArgument(
                f"domain {self.uuid}: an observed domain cannot be NO_DOMAIN", field="power"
            )


@dataclass(frozen=True)
class OrphanPolicy:
    grace_ms: int = 10 * 60 * 1000
    destroy: bool = True  # False: report orphans forever, never delete them
    max_destroys: int = 5  # per pass


class DriftKind(enum.Enum):
    NOT_RUNNING = "NOT_RUNNING"  # wanted running, found shut off or crashed: started
    PAUSED = "PAUSED"  # wanted running, found paused: left alone, libvirt pauses on disk I/O errors
    RUNNING_WHEN_STOPPED = "RUNNING_WHEN_STOPPED"  # wanted stopped, found running: stopped
    MISSING = "MISSING"  # built before, no domain now: defined again
    SPEC_STALE = "SPEC_STALE"  # domain defined from an older spec version
    DUPLICATE = "DUPLICATE"  # more than one domain claims the instance
    ORPHAN = "ORPHAN"  # cellfed domain unknown to the controller, within grace (or destroy off)
    ORPHAN_REMOVED = "ORPHAN_REMOVED"  # orphan past grace: destroyed and undefined
    STALE_GENERATION = "STALE_GENERATION"  # a copy older than the current generation: removed at once


@dataclass(frozen=True)
class DefineAndStart:
    instance: DesiredInstance


@dataclass(frozen=True)
class Define:
    instance: DesiredInstance  # defined, left shut off: the instance is STOPPED


@dataclass(frozen=True)
class Start:
    domain_uuid: str
    instance_id: str
    reboot_generation: int = 0  # a pending reboot this start satisfies (0: none)


@dataclass(frozen=True)
class Reboot:
    domain_uuid: str
    instance_id: str
    generation: int  # record it as applied once the reboot succeeded


@dataclass(frozen=True)
class Stop:
    domain_uuid: str
    instance_id: str  # graceful (ACPI); escalating to Destroy after a timeout is the loop's job


@dataclass(frozen=True)
class Destroy:
    domain_uuid: str
    instance_id: str  # hard power-off; the domain stays defined


@dataclass(frozen=True)
class Undefine:
    domain_uuid: str
    instance_id: str


@dataclass(frozen=True)
class ReportDrift:
    kind: DriftKind
    instance_id: str
    domain_uuid: str | None
    detail: str


Action = DefineAndStart | Define | Start | Reboot | Stop | Destroy | Undefine | ReportDrift


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]  # teardown first (frees room), then stops, then starts, then reports
    orphans_first_seen: Mapping[str, int]  # domain uuid -> first seen (now_ms); store for the next pass
    foreign_domains: tuple[str, ...]  # uuids of domains that are not ours


def reconcile(
    desired: DesiredState,
    observed: Sequence[ObservedDomain],
    first_seen: Mapping[str, int],
    now_ms: int,
    policy: OrphanPolicy = OrphanPolicy(),
    rebooted: Mapping[str, int] = MappingProxyType({}),
) -> Plan:
    wanted = {d.instance_id: d for d in desired.instances}
    ours: dict[str, list[ObservedDomain]] = {}
    foreign: list[str] = []
    for dom in observed:
        # Either cell unknown (older metadata, a caller without one): the instance id alone decides.
        same_cell = dom.cell is None or desired.cell_id is None or dom.cell == desired.cell_id
        if dom.instance_id is not None and same_cell:
            ours.setdefault(dom.instance_id, []).append(dom)
        else:
            foreign.append(dom.uuid)
    actions: list[Action] = []
    orphans: list[tuple[str, ObservedDomain]] = []
    for instance_id, doms in list(ours.items()):
        current = (
            wanted[instance_id].generation if instance_id in wanted else desired.superseded.get(instance_id)
        )
        stale = [d for d in doms if current is not None and (d.generation or 1) < current]
        for dom in stale:
            detail = f"domain has generation {dom.generation or 1}, the current copy is generation {current}"
            actions += [
                *_teardown(dom, instance_id),
                ReportDrift(DriftKind.STALE_GENERATION, instance_id, dom.uuid, detail),
            ]
        doms = [d for d in doms if d not in stale]
        if doms:
            ours[instance_id] = doms
        else:
            del ours[instance_id]
    for instance_id, doms in ours.items():
        want = wanted.get(instance_id)
        if want is None:
            orphans.extend((instance_id, dom) for dom in doms)
        elif want.power is DesiredPower.ABSENT:
            actions.extend(a for dom in doms for a in _teardown(dom, instance_id))
        elif len(doms) > 1:
            actions.extend(_duplicate(dom, instance_id, len(doms)) for dom in doms)
        else:
            actions.extend(_converge(want, doms[0], rebooted.get(instance_id, 0)))
    for want in wanted.values():
        if want.instance_id not in ours:
            actions.extend(_create(want))
    seen = {dom.uuid: first_seen.get(dom.uuid, now_ms) for _, dom in orphans}
    actions.extend(_orphans(orphans, seen, desired.as_of_ms, policy))
    return Plan(tuple(sorted(actions, key=_order)), MappingProxyType(seen), tuple(sorted(foreign)))


def _converge(want: DesiredInstance, dom: ObservedDomain, rebooted: int) -> list[Action]:
    iid, uuid, power = want.instance_id, dom.uuid, dom.power
    pending_reboot = want.reboot_generation if want.reboot_generation > rebooted else 0
    actions: list[Action] = []
    if dom.spec_version is not None and dom.spec_version < want.spec_version:
        detail = f"domain has spec version {dom.spec_version}, controller wants {want.spec_version}"
        actions.append(ReportDrift(DriftKind.SPEC_STALE, iid, uuid, detail))
    if want.power is DesiredPower.RUNNING:
        if power in (PowerState.SHUTOFF, PowerState.CRASHED):
            actions += [
                Start(uuid, iid, pending_reboot),
                ReportDrift(DriftKind.NOT_RUNNING, iid, uuid, f"found {power.value}"),
            ]
        elif pending_reboot:
            actions.append(Reboot(uuid, iid, pending_reboot))
        elif power is PowerState.PAUSED:
            actions.append(
                ReportDrift(DriftKind.PAUSED, iid, uuid, "found PAUSED; not resumed automatically")
            )
    elif power in (PowerState.RUNNING, PowerState.PAUSED):
        # A paused guest cannot answer the ACPI button, so it is powered off hard (it stays defined).
        stop: Action = Stop(uuid, iid) if power is PowerState.RUNNING else Destroy(uuid, iid)
        actions += [stop, ReportDrift(DriftKind.RUNNING_WHEN_STOPPED, iid, uuid, f"found {power.value}")]
    return actions


def _create(want: DesiredInstance) -> list[Action]:
    if want.power is DesiredPower.ABSENT:
        return []  # already gone; the agent's report (NO_DOMAIN) lets the controller finish the delete
    action: Action = DefineAndStart(want) if want.power is DesiredPower.RUNNING else Define(want)
    if not want.built:
        return [action]
    return [action, ReportDrift(DriftKind.MISSING, want.instance_id, None, "built before; no domain found")]


def _teardown(dom: ObservedDomain, instance_id: str) -> list[Action]:
    if dom.power is PowerState.SHUTOFF:
        return [Undefine(dom.uuid, instance_id)]
    return [Destroy(dom.uuid, instance_id), Undefine(dom.uuid, instance_id)]


def _duplicate(dom: ObservedDomain, instance_id: str, count: int) -> ReportDrift:
    detail = f"{count} domains claim this instance; none touched"
    return ReportDrift(DriftKind.DUPLICATE, instance_id, dom.uuid, detail)


def _orphans(
    orphans: list[tuple[str, ObservedDomain]], seen: Mapping[str, int], as_of_ms: int, policy: OrphanPolicy
) -> list[Action]:
    actions: list[Action] = []
    budget = policy.max_destroys if policy.destroy else 0
    for instance_id, dom in sorted(orphans, key=lambda o: (seen[o[1].uuid], o[1].uuid)):  # oldest first
        unknown_for = as_of_ms - seen[dom.uuid]
        if unknown_for > policy.grace_ms and budget > 0:
            budget -= 1
            actions += _teardown(dom, instance_id)
            detail = f"unknown to the controller for {unknown_for} ms (grace {policy.grace_ms} ms); removed"
            actions.append(ReportDrift(DriftKind.ORPHAN_REMOVED, instance_id, dom.uuid, detail))
        else:
            detail = f"unknown to the controller for {max(0, unknown_for)} ms (grace {policy.grace_ms} ms)"
            actions.append(ReportDrift(DriftKind.ORPHAN, instance_id, dom.uuid, detail))
    return actions


_PHASE = {Destroy: 0, Undefine: 0, Stop: 1, Define: 2, DefineAndStart: 2, Start: 2, Reboot: 2, ReportDrift: 3}


def _order(action: Action) -> tuple[int, str]:
    # A stable sort on (phase, instance) keeps Destroy before Undefine for the same domain.
    iid = action.instance.instance_id if isinstance(action, DefineAndStart | Define) else action.instance_id
    return _PHASE[type(action)], iid
