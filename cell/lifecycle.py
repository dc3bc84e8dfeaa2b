"""The instance state machine, as data: one transition table, frozen events in, frozen actions out.

Pure (h11 style): `transition` neither persists nor sends; the controller stores the new record (its
`version` is the optimistic-concurrency token) and then executes the actions in order.

Two kinds of events. Requests come from users: one the table does not allow is refused with
FailedPrecondition naming the state. Reports come from agents and describe the past: one the table does
not list is stale (a late build result after a delete, a duplicate) and is ignored, never an error, so a
replayed or reordered report can never move an instance backwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import ClassVar

from fedlib.errors import FailedPrecondition, InvalidArgument
from fedlib.states import InstanceStatus as State
from fedlib.states import PowerState

__all__ = ["PowerState", "State"]  # the shared vocabulary (fedlib.states), named as this table uses it


class AgentCommand(enum.Enum):
    BUILD = "BUILD"
    START = "START"
    STOP = "STOP"
    REBOOT = "REBOOT"
    DELETE = "DELETE"  # destroy and undefine


@dataclass(frozen=True)
class Fault:
    code: str  # a stable machine-readable reason, e.g. "DEFINE_FAILED"
    message: str


@dataclass(frozen=True)
class Instance:
    instance_id: str
    host_id: str | None
    state: State
    version: int  # bumped on every change; the store's compare-and-set token
    updated_ms: int
    fault: Fault | None = None
    # Which copy of the instance is the real one: 1 at build, bumped by each evacuation to another host.
    # Hosts carry it in domain metadata; a domain with an older generation is a stale copy to destroy.
    generation: int = 1

    def __post_init__(self) -> None:
        if self.state is State.UNKNOWN:
            raise InvalidArgument("UNKNOWN is derived for readers and is never stored", field="state")


# Events. `kind` is the table's column; a request is refused when absent, a report ignored.
@dataclass(frozen=True)
class Event:
    kind: ClassVar[str]
    is_request: ClassVar[bool] = False

    def column(self) -> str:
        return self.kind


@dataclass(frozen=True)
class Start(Event):
    kind = "start"
    is_request = True


@dataclass(frozen=True)
class Stop(Event):
    kind = "stop"
    is_request = True


@dataclass(frozen=True)
class Reboot(Event):
    kind = "reboot"
    is_request = True


@dataclass(frozen=True)
class Delete(Event):
    kind = "delete"
    is_request = True


@dataclass(frozen=True)
class BuildSucceeded(Event):
    kind = "build_succeeded"


@dataclass(frozen=True)
class BuildFailed(Event):
    kind = "build_failed"
    fault: Fault


@dataclass(frozen=True)
class RebootDone(Event):
    kind = "reboot_done"


@dataclass(frozen=True)
class DeleteDone(Event):
    kind = "delete_done"


@dataclass(frozen=True)
class CommandFailed(Event):
    """An agent gave up on a reboot or delete; the instance goes to ERROR, where delete is allowed."""

    kind = "command_failed"
    fault: Fault


@dataclass(frozen=True)
class HostReported(Event):
    """A level-triggered observation: it completes a build or a delete whose done-event was lost."""

    kind = "host_reported"
    power: PowerState

    def column(self) -> str:
        return f"host_reported_{self.power.value.lower()}"


# Actions, executed by the controller in order after the new record is stored.
@dataclass(frozen=True)
class SendToAgent:
    host_id: str
    instance_id: str
    command: AgentCommand


@dataclass(frozen=True)
class ReleaseCapacity:
    instance_id: str  # CapacityLedger.release is idempotent, so releasing twice is harmless


@dataclass(frozen=True)
class PublishIndex:
    instance_id: str
    state: State


Action = SendToAgent | ReleaseCapacity | PublishIndex


@dataclass(frozen=True)
class _Rule:
    to: State
    command: AgentCommand | None = None
    release: bool = False


_NOOP: _Rule | None = None  # accepted, nothing to do: an idempotent repeat
_DELETE = _Rule(State.DELETING, AgentCommand.DELETE)
_GONE = _Rule(State.DELETED, release=True)
_FAIL = _Rule(State.ERROR)

# (state, event column) -> rule: the whole lifecycle. Absent: refused (requests) or stale (reports).
TRANSITIONS: dict[tuple[State, str], _Rule | None] = {
    (State.BUILDING, "build_succeeded"): _Rule(State.ACTIVE),
    (State.BUILDING, "host_reported_running"): _Rule(State.ACTIVE),
    # A failed build gives its room back at once: the guest is not serving anyone, and the agent is told
    # to delete whatever it left defined (and tears it down anyway: an ERROR instance is desired ABSENT).
    (State.BUILDING, "build_failed"): _Rule(State.ERROR, AgentCommand.DELETE, release=True),
    (State.BUILDING, "delete"): _DELETE,
    (State.ACTIVE, "stop"): _Rule(State.STOPPED, AgentCommand.STOP),
    (State.ACTIVE, "reboot"): _Rule(State.REBOOTING, AgentCommand.REBOOT),
    (State.ACTIVE, "delete"): _DELETE,
    (State.STOPPED, "start"): _Rule(State.ACTIVE, AgentCommand.START),
    (State.STOPPED, "delete"): _DELETE,
    (State.REBOOTING, "reboot"): _NOOP,
    (State.REBOOTING, "reboot_done"): _Rule(State.ACTIVE),
    (State.REBOOTING, "command_failed"): _FAIL,
    (State.REBOOTING, "delete"): _DELETE,
    (State.ERROR, "delete"): _DELETE,
    (State.DELETING, "delete"): _NOOP,
    (State.DELETING, "delete_done"): _GONE,
    (State.DELETING, "host_reported_no_domain"): _GONE,
    (State.DELETING, "command_failed"): _FAIL,
    (State.DELETED, "delete"): _NOOP,
}


def create(instance_id: str, host_id: str, now_ms: int) -> tuple[Instance, tuple[Action, ...]]:
    """A new instance, BUILDING on the host whose capacity the controller has already claimed."""
    inst = Instance(instance_id, host_id, State.BUILDING, 1, now_ms)
    return inst, (
        SendToAgent(host_id, instance_id, AgentCommand.BUILD),
        PublishIndex(instance_id, inst.state),
    )


def transition(instance: Instance, event: Event, now_ms: int) -> tuple[Instance, tuple[Action, ...]]:
    """Apply one event. Unchanged instance and no actions for no-ops and stale reports."""
    key = (instance.state, event.column())
    if key not in TRANSITIONS:
        if event.is_request:
            raise FailedPrecondition(
                f"cannot {event.kind} instance {instance.instance_id}: it is {instance.state.value}",
                field="state",
            )
        return instance, ()
    rule = TRANSITIONS[key]
    if rule is None:
        return instance, ()
    if rule.to is State.DELETING and instance.host_id is None:
        rule = _GONE  # no host ever held it: nothing for an agent to destroy
    # An ERROR keeps its fault through DELETING, so a failed delete still shows why it was ERROR.
    fault = event.fault if isinstance(event, BuildFailed | CommandFailed) else instance.fault
    new = replace(
        instance,
        state=rule.to,
        version=instance.version + 1,
        updated_ms=max(instance.updated_ms, now_ms),  # a clock step back must not reorder history
        fault=fault,
    )
    return new, _actions(new, rule)


def _actions(new: Instance, rule: _Rule) -> tuple[Action, ...]:
    actions: list[Action] = []
    if rule.command is not None and new.host_id is not None:
        actions.append(SendToAgent(new.host_id, new.instance_id, rule.command))
    if rule.release:
        actions.append(ReleaseCapacity(new.instance_id))
    actions.append(PublishIndex(new.instance_id, new.state))
    return tuple(actions)


def reboot_generation(record: Instance) -> int:
    """The reboot a host must carry out, as a generation number (0: none). While REBOOTING, the record's
    version names the reboot: it is set by the request and unchanged until the host reports it done."""
    return record.version if record.state is State.REBOOTING else 0


@dataclass(frozen=True)
class ObservedStatus:
    status: State  # UNKNOWN when the host has been silent past the grace period
    last_known: State  # the stored state, for "UNKNOWN (was ACTIVE)"
    age_ms: int  # how old the information behind `status` is


# The controller alone decides these; a silent host cannot make them stale.
_CONTROLLER_OWNED = frozenset({State.ERROR, State.DELETED})


def observed_status(
    record: Instance, host_last_seen_ms: int | None, now_ms: int, grace_ms: int
) -> ObservedStatus:
    """The status a reader should see: the stored state, or UNKNOWN once the host's report is too old."""
    if record.host_id is None or record.state in _CONTROLLER_OWNED:
        return ObservedStatus(record.state, record.state, max(0, now_ms - record.updated_ms))
    if host_last_seen_ms is None:  # never heard from since the controller started
        return ObservedStatus(State.UNKNOWN, record.state, max(0, now_ms - record.updated_ms))
    age = max(0, now_ms - host_last_seen_ms)
    return ObservedStatus(State.UNKNOWN if age > grace_ms else record.state, record.state, age)


# What evacuation makes of each state: the copy on the lost host is superseded by a new generation.
# Running (or about to run) instances are rebuilt elsewhere and are BUILDING until that host reports
# them running; a stopped one is defined elsewhere and stays stopped. A DELETING one is finished (its
# host is fenced or powered off; the leftover is destroyed when the host returns), an ERROR one keeps
# its fault and no host (a delete then needs no agent). DELETED is left alone.
_EVACUATED_TO = {
    State.BUILDING: State.BUILDING,
    State.ACTIVE: State.BUILDING,
    State.REBOOTING: State.BUILDING,
    State.STOPPED: State.STOPPED,
}


def needs_host_after_evacuation(state: State) -> bool:
    return state in _EVACUATED_TO


def evacuate(instance: Instance, new_host: str | None, now_ms: int) -> tuple[Instance, tuple[Action, ...]]:
    """The next generation of an instance whose host is gone: on `new_host` (running or stopped
    instances; their capacity is claimed there already), or nowhere (DELETING -> DELETED, ERROR)."""
    if instance.state is State.DELETED:
        return instance, ()
    to = _EVACUATED_TO.get(instance.state)
    if to is not None and new_host is None:
        raise InvalidArgument(f"instance {instance.instance_id} needs a host to move to", field="new_host")
    state = to or (State.DELETED if instance.state is State.DELETING else instance.state)
    new = replace(
        instance,
        host_id=new_host if to is not None else None,
        state=state,
        version=instance.version + 1,
        updated_ms=max(instance.updated_ms, now_ms),
        fault=None if to is not None else instance.fault,
        generation=instance.generation + 1,
    )
    actions: list[Action] = []
    if new.host_id is not None:
        actions.append(SendToAgent(new.host_id, new.instance_id, AgentCommand.BUILD))
    if state is State.DELETED:
        actions.append(ReleaseCapacity(new.instance_id))
    actions.append(PublishIndex(new.instance_id, new.state))
    return new, tuple(actions)
