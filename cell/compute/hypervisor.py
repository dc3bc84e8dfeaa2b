"""What the compute agent knows about a hypervisor, without importing libvirt (pure).

The libvirt adapter (cell.compute.libvirt_host) and any in-memory twin speak these types, so the agent
and its tests never see a libvirt object. libvirt's state and event numbers are part of its stable ABI,
which is why they can be decoded here from plain ints.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cell.compute.domain_spec import InstanceMetadata
from fedlib.errors import CellfedError

# virErrorNumber values the agent branches on (include/libvirt/virterror.h).
ERR_NO_SUPPORT = 3
ERR_INVALID_ARG = 8
ERR_OPERATION_INVALID = 55
ERR_NO_DOMAIN = 42
ERR_NO_DOMAIN_METADATA = 80


class LibvirtCallError(CellfedError):
    """A libvirt call failed. `call` names the API (the `libvirt errors by call` metric label) and
    `message` is libvirt's own text, which becomes the instance's fault as is."""

    def __init__(self, call: str, message: str, *, code: int = 0) -> None:
        super().__init__(f"{call}: {message}")
        self.call = call
        self.message = message
        self.code = code

    @property
    def no_domain(self) -> bool:
        """The domain does not exist (any more): callers that delete treat this as done."""
        return self.code == ERR_NO_DOMAIN


class DomainState(enum.Enum):
    """virDomainState, by value."""

    NOSTATE = 0
    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTTING_DOWN = 4
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7

    @classmethod
    def of(cls, code: int) -> DomainState:
        try:
            return cls(code)
        except ValueError:
            return cls.NOSTATE  # a newer libvirt state this code does not know yet


class EventKind(enum.Enum):
    """virDomainEventType, by value."""

    DEFINED = 0
    UNDEFINED = 1
    STARTED = 2
    SUSPENDED = 3
    RESUMED = 4
    STOPPED = 5
    SHUTDOWN = 6
    PMSUSPENDED = 7
    CRASHED = 8
    UNKNOWN = -1


# Detail names for the kinds the agent acts on (virDomainEvent*DetailType); others keep only the number.
_DETAILS: dict[EventKind, tuple[str, ...]] = {
    EventKind.STARTED: ("booted", "migrated", "restored", "from_snapshot", "wakeup"),
    EventKind.STOPPED: ("shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from_snapshot"),
    EventKind.SHUTDOWN: ("finished", "guest", "host"),
}


@dataclass(frozen=True)
class LifecycleEvent:
    domain_name: str
    uuid: str
    kind: EventKind
    detail: int
    detail_name: str

    @classmethod
    def decode(cls, domain_name: str, uuid: str, event: int, detail: int) -> LifecycleEvent:
        try:
            kind = EventKind(event)
        except ValueError:
            kind = EventKind.UNKNOWN
        names = _DETAILS.get(kind, ())
        name = names[detail] if 0 <= detail < len(names) else ""
        return cls(domain_name, uuid, kind, detail, name)


@dataclass(frozen=True)
class DomainInfo:
    """One domain as the host sees it; `metadata` is None for domains cellfed did not define."""

    name: str
    uuid: str
    state: DomainState
    metadata: InstanceMetadata | None


@dataclass(frozen=True)
class HostCapacity:
    """The host's size. Nothing below enforces it: the agent keeps its own accounting."""

    hostname: str
    cpus: int
    memory_mib: int
    cpu_model: str
    cpu_mhz: int


EventCallback = Callable[[LifecycleEvent], object]  # the return value is ignored


class Hypervisor(Protocol):
    """The blocking surface the agent calls through asyncio.to_thread; implementations are thread-safe."""

    def define(self, domain_xml: str) -> DomainInfo: ...
    def define_and_start(self, domain_xml: str) -> DomainInfo: ...
    def start(self, name: str) -> None: ...
    def shutdown(self, name: str, timeout_s: float = ...) -> bool: ...
    def destroy(self, name: str) -> None: ...
    def reboot(self, name: str) -> None: ...
    def undefine(self, name: str) -> None: ...
    def delete(self, name: str) -> bool: ...
    def domain(self, name: str) -> DomainInfo: ...
    def list_domains(self) -> list[DomainInfo]: ...
    def capacity(self) -> HostCapacity: ...
    def subscribe(self, callback: EventCallback) -> int: ...
    def unsubscribe(self, handle: int) -> None: ...
    def is_alive(self) -> bool: ...
    def close(self) -> None: ...
