"""What libvirt shows, in the shapes the controller (Agent API) and the reconciler want. Pure."""

from __future__ import annotations

from cellfed.v1 import agent_pb2

from cell.compute.domain_xml import domain_name
from cell.compute.hypervisor import DomainInfo, DomainState, EventKind, LifecycleEvent
from cell.compute.reconcile import ObservedDomain
from fedlib.states import PowerState as Power

_PREFIX = domain_name("")

_WIRE_POWER = {
    DomainState.RUNNING: agent_pb2.RUNNING,
    DomainState.BLOCKED: agent_pb2.RUNNING,
    DomainState.SHUTTING_DOWN: agent_pb2.RUNNING,
    DomainState.PAUSED: agent_pb2.PAUSED,
    DomainState.PMSUSPENDED: agent_pb2.PAUSED,
    DomainState.SHUTOFF: agent_pb2.SHUTOFF,
    DomainState.NOSTATE: agent_pb2.SHUTOFF,
    DomainState.CRASHED: agent_pb2.CRASHED,
}
_CORE_POWER = {
    agent_pb2.RUNNING: Power.RUNNING,
    agent_pb2.PAUSED: Power.PAUSED,
    agent_pb2.SHUTOFF: Power.SHUTOFF,
    agent_pb2.CRASHED: Power.CRASHED,
}
_EVENT_POWER = {
    EventKind.STARTED: agent_pb2.RUNNING,
    EventKind.RESUMED: agent_pb2.RUNNING,
    EventKind.SUSPENDED: agent_pb2.PAUSED,
    EventKind.STOPPED: agent_pb2.SHUTOFF,
    EventKind.CRASHED: agent_pb2.CRASHED,
    EventKind.UNDEFINED: agent_pb2.NO_DOMAIN,
}


def report_domains(domains: list[DomainInfo], cell_id: str) -> list[agent_pb2.ObservedDomain]:
    """This cell's domains for the controller; foreign domains are not reported (not ours)."""
    out = []
    for d in domains:
        meta = d.metadata
        if meta is None or meta.cell != cell_id:
            continue
        out.append(
            agent_pb2.ObservedDomain(
                instance_id=meta.instance_id, tenant=meta.tenant, flavor=meta.flavor,
                spec_version=meta.spec_version, power=_WIRE_POWER[d.state], generation=meta.generation,
            )
        )  # fmt: skip
    return out


def observed_domains(domains: list[DomainInfo]) -> list[ObservedDomain]:
    """Every domain for the reconciler, which itself decides what is ours."""
    out = []
    for d in domains:
        meta = d.metadata
        out.append(
            ObservedDomain(
                uuid=d.uuid,
                power=_CORE_POWER[_WIRE_POWER[d.state]],
                instance_id=meta.instance_id if meta else None,
                spec_version=meta.spec_version if meta else None,
                cell=meta.cell if meta else None,
                generation=meta.generation if meta else None,
            )
        )
    return out


def event_power(event: LifecycleEvent) -> agent_pb2.DomainEvent | None:
    """A libvirt lifecycle event on one of our domains, as an Agent API event (None: not relevant)."""
    power = _EVENT_POWER.get(event.kind)
    if power is None or not event.domain_name.startswith(_PREFIX):
        return None
    message = agent_pb2.DomainEvent(
        instance_id=event.domain_name[len(_PREFIX) :],
        power=power,
        detail=f"{event.kind.name.lower()} {event.detail_name}".strip(),
    )
    message.event_time.GetCurrentTime()
    return message
