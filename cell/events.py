"""What the cell core takes in (events) and hands back (one `Ready` batch per step).

Events are frozen values decoded at the edges (the Cell API servicer, the agent stream, the periodic
loops); none carries a protobuf, a socket or a clock. `Ready` is raft's idea: everything a step decided,
as data, for the controller to carry out in order: persist `rows` (the only write on the request path),
then `advance` the core, then push the desired state of the hosts in `desired_for`, queue `publish`,
notify watchers and append `log` to the action log off the critical path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cell import lifecycle as lc
from cell.hosts import HostState
from cell.ipam import AddressTxn
from cell.placement import CapacityLedger, HostView
from cell.records import CellInstance, InstanceSpec


# -- events ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildRequested:
    """A router asks for a new instance (or repeats an earlier ask: idempotent on the instance id)."""

    spec: InstanceSpec


@dataclass(frozen=True)
class UserRequested:
    """start / stop / reboot / delete of an existing instance, on behalf of `tenant` ("" = any)."""

    instance_id: str
    tenant: str
    request: lc.Event
    reason: str = ""  # for the action log, when the cell itself asks (default: "<kind> requested")


@dataclass(frozen=True)
class Observed:
    """One domain as its host reports it."""

    power: lc.PowerState
    reboot_generation: int = 0  # the newest reboot the host applied
    # The instance generation in the domain's metadata (older than the record's: a stale copy). 0: not
    # reported (an agent from before generations, which cannot tell): taken as current.
    generation: int = 0


@dataclass(frozen=True)
class Failure:
    """The host could not reach the desired state it was given for one instance."""

    wanted: lc.PowerState  # what it was asked for: RUNNING, SHUTOFF, or NO_DOMAIN (gone)
    reboot_generation: int
    call: str
    error: str


@dataclass(frozen=True)
class HostConnected:
    """An agent's hello: the host's resources (`disabled` is the controller's, kept from before) and
    what it runs now."""

    host: HostState
    domains: Mapping[str, Observed]


@dataclass(frozen=True)
class HostHeartbeat:
    host_id: str
    domains: Mapping[str, Observed]  # the whole picture: an instance absent here has no domain
    failures: Mapping[str, Failure] = field(default_factory=dict)
    lease_generation: int = 0  # the lease it renews (0: an agent that predates leases)
    seq: int = 0  # echoed in the renewal, so the agent knows which of its heartbeats renewed it


@dataclass(frozen=True)
class DomainReported:
    """One libvirt lifecycle event: a single instance's power, between heartbeats."""

    host_id: str
    instance_id: str
    power: lc.PowerState
    detail: str


@dataclass(frozen=True)
class HostDisconnected:
    host_id: str


@dataclass(frozen=True)
class HostDisabledSet:
    """The operator takes a host out of placement (it keeps its instances) or puts it back."""

    host_id: str
    disabled: bool


@dataclass(frozen=True)
class EvacuationRequested:
    """The operator moves every instance off a host that is gone, to other hosts of this cell. Allowed
    once the host's lease has expired and fencing time has passed, or by force when the operator says
    the host is powered off (cell.leases). The cell never asks for this by itself."""

    host_id: str
    force: bool = False
    powered_off: bool = False


@dataclass(frozen=True)
class Tick:
    """Time passed: builds past their deadline fail, host liveness is re-read for placement."""


Event = (
    BuildRequested | UserRequested | HostConnected | HostHeartbeat | DomainReported | HostDisconnected
    | HostDisabledSet | EvacuationRequested | Tick
)  # fmt: skip


# -- the batch ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogEntry:
    """One line of an instance's action log."""

    instance_id: str
    at_ms: int
    reason: str
    status: str
    detail: str
    request_id: str = ""


@dataclass(frozen=True)
class BuildFinished:
    outcome: str  # "active" | "error"
    seconds: float


@dataclass(frozen=True)
class LeaseGrant:
    """A lease granted (on connect, seq 0) or renewed (by the heartbeat numbered `seq`): sent to the host."""

    host_id: str
    generation: int
    seq: int


@dataclass(frozen=True)
class Moved:
    instance_id: str
    to_host: str | None  # None: not rebuilt (deleted or in ERROR), only its stale copy is superseded
    generation: int
    state: lc.State


@dataclass(frozen=True)
class Evacuation:
    """What an evacuation did: every instance of the host, moved or left with the reason."""

    host_id: str
    moved: tuple[Moved, ...]
    stayed: tuple[tuple[str, str], ...]  # (instance id, why it stayed: no room)


@dataclass(frozen=True)
class Ready:
    now_ms: int
    result: CellInstance | None = None  # the answer to a build or a user request
    rows: tuple[CellInstance, ...] = ()  # new versions to persist before anything else happens
    hosts: tuple[HostState, ...] = ()  # host table entries to install (liveness, resources)
    host_rows: tuple[HostState, ...] = ()  # of those, the ones to persist (resources changed)
    ledger: CapacityLedger | None = None  # the new ledger when claims changed
    views: Mapping[str, HostView] = field(default_factory=dict)  # placement views to install
    log: tuple[LogEntry, ...] = ()
    notify: tuple[tuple[CellInstance, str], ...] = ()  # watcher updates, in order
    failures: tuple[Failure, ...] = ()  # host failures that moved an instance to ERROR (for metrics)
    desired_for: tuple[str, ...] = ()  # hosts whose desired state changed: push it whole, now
    publish: tuple[CellInstance, ...] = ()  # index and listing rows to (re)write
    builds_finished: tuple[BuildFinished, ...] = ()
    leases: tuple[LeaseGrant, ...] = ()  # grants and renewals to send
    lease_lost: tuple[str, ...] = ()  # hosts whose heartbeat was refused: their lease is dead, fence
    host_result: HostState | None = None  # the answer to an operator's host request
    evacuation: Evacuation | None = None
    addresses: AddressTxn | None = None  # the addresses this step took and freed, committed by advance
    next_mac: int = 0  # the cell's MAC sequence after this step

    @property
    def changes_state(self) -> bool:
        return bool(self.rows or self.hosts or self.ledger is not None or self.views)
