"""Compute hosts as the controller sees them: resources from each agent's hello, liveness from the age of
its last message. Pure: the caller passes the time; the cell core (cell.core) decides every change and
installs it with `upsert`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostState:
    host_id: str
    libvirt_uri: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    cpu_allocation_ratio: float
    memory_allocation_ratio: float
    disabled: bool = False
    connected: bool = False
    last_seen_ms: int | None = None  # None: not heard from since this controller started
    # The lease of the host's current connection (cell.leases): granted on connect, renewed by heartbeats.
    lease_generation: int = 0
    lease_renewed_ms: int | None = None  # controller clock; None: never leased
    lease_revoked: bool = False  # evacuated: no renewal until the agent connects again


class HostTable:
    """Fast failure detection for hosts: a host whose last message is older than `grace_ms` is out of
    placement at once; its instances read as UNKNOWN (cell.lifecycle.observed_status) until it returns."""

    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self._hosts: dict[str, HostState] = {}

    def upsert(self, host: HostState) -> None:
        self._hosts[host.host_id] = host

    def get(self, host_id: str) -> HostState | None:
        return self._hosts.get(host_id)

    def ids(self) -> frozenset[str]:
        return frozenset(self._hosts)

    def all(self) -> list[HostState]:
        return [self._hosts[k] for k in sorted(self._hosts)]

    def is_up(self, host_id: str, now_ms: int) -> bool:
        host = self._hosts.get(host_id)
        return host is not None and is_up(host, now_ms, self.grace_ms)

    def last_seen(self, host_id: str | None) -> int | None:
        host = self._hosts.get(host_id) if host_id else None
        return host.last_seen_ms if host else None


def is_up(host: HostState, now_ms: int, grace_ms: int) -> bool:
    """Connected and heard from within the grace period: the one liveness rule placement and readers use."""
    return host.connected and host.last_seen_ms is not None and now_ms - host.last_seen_ms <= grace_ms
