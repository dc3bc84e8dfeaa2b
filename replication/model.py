"""The rows of the global keyspace as frozen, validated values.

Every time is an epoch-milliseconds int passed in by the caller: nothing here reads a clock, so the same
values drive the Cassandra adapter, the in-memory twin and pure tests alike. `updated_at_ms` doubles as
the write timestamp of the row (last writer by the owner's clock wins), so a late, out-of-order publish
from a cell can never roll a row back.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from fedlib.addresses import NicAddress, check_addresses
from fedlib.errors import InvalidArgument
from fedlib.ids import parse_instance_id
from fedlib.names import check_display_name, check_id, check_tenant, shown
from fedlib.networks import MAX_NETWORKS, check_network_name
from fedlib.states import InstanceStatus

__all__ = ["InstanceStatus"]  # the shared status vocabulary (fedlib.states), as the rows store it

# Cassandra write timestamps are microseconds in a signed 64-bit long; ms * 1000 must fit.
_MAX_MS = (1 << 63) // 1000 - 1
_MAX_TTL_S = 20 * 365 * 24 * 3600


class SiteState(enum.StrEnum):
    ENABLED = "ENABLED"
    DRAINED = "DRAINED"  # an operator took the whole site out of placement
    OFFLINE = "OFFLINE"  # the slow detector declared it gone; nothing is moved automatically


class CellState(enum.StrEnum):
    ENABLED = "ENABLED"
    DRAINED = "DRAINED"
    DISABLED = "DISABLED"


def stored_status(value: str, field: str = "status") -> InstanceStatus:
    """A status as rows store it: one of the lifecycle's, never the derived UNKNOWN."""
    try:
        status = InstanceStatus(value)
    except ValueError:
        raise InvalidArgument(f"{field} is not an instance status", field=field) from None
    if status is InstanceStatus.UNKNOWN:
        raise InvalidArgument(f"{field} UNKNOWN is derived for readers and never stored", field=field)
    return status


def check_ms(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_MS:
        raise InvalidArgument(
            f"{field} {value!r} must be epoch milliseconds (a non-negative int)", field=field
        )
    return value


def check_ttl(value: int, field: str = "ttl_s") -> int:
    # Cassandra refuses TTLs above 20 years; a TTL of 0 would mean "never expires", never what a caller means.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_TTL_S:
        raise InvalidArgument(f"{field} {value!r} must be 1-{_MAX_TTL_S} seconds", field=field)
    return value


def _check_count(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{field} {value!r} must be a non-negative int", field=field)
    return value


def _check_endpoint(value: str, field: str) -> str:
    # host:port or a URL; only shape matters here, the dialler validates the rest.
    if not value or len(value) > 255 or any(c.isspace() for c in value):
        raise InvalidArgument(f"{field} {value!r} must be a non-empty endpoint without spaces", field=field)
    return value


@dataclass(frozen=True)
class Site:
    site_id: str
    region: str
    lat: float
    lon: float
    router_endpoint: str
    state: SiteState
    updated_at_ms: int

    def __post_init__(self) -> None:
        check_id(self.site_id, "site_id")
        check_id(self.region, "region")
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise InvalidArgument(f"coordinates ({self.lat}, {self.lon}) out of range", field="lat")
        _check_endpoint(self.router_endpoint, "router_endpoint")
        object.__setattr__(self, "state", SiteState(self.state))
        check_ms(self.updated_at_ms, "updated_at_ms")


@dataclass(frozen=True)
class Cell:
    cell_id: str
    site_id: str
    region: str
    endpoint: str
    state: CellState
    updated_at_ms: int

    def __post_init__(self) -> None:
        check_id(self.cell_id, "cell_id")
        check_id(self.site_id, "site_id")
        check_id(self.region, "region")
        _check_endpoint(self.endpoint, "endpoint")
        object.__setattr__(self, "state", CellState(self.state))
        check_ms(self.updated_at_ms, "updated_at_ms")


@dataclass(frozen=True)
class RouterMember:
    router_id: str
    site_id: str
    endpoint: str
    heartbeat_at_ms: int

    def __post_init__(self) -> None:
        check_id(self.router_id, "router_id")
        check_id(self.site_id, "site_id")
        _check_endpoint(self.endpoint, "endpoint")
        check_ms(self.heartbeat_at_ms, "heartbeat_at_ms")


_STATUS_KEY = re.compile(r"^[A-Z][A-Z_]{0,31}$")


def _check_status_counts(counts: Mapping[str, int], field: str) -> dict[str, int]:
    """{"ACTIVE": 3, ...}: status names (as the cell observes them, UNKNOWN included) -> counts."""
    if len(counts) > 32:
        raise InvalidArgument(f"{field} has {len(counts)} statuses; at most 32", field=field)
    for status, count in counts.items():
        if not isinstance(status, str) or not _STATUS_KEY.match(status):
            raise InvalidArgument(f"{field} key {status!r} is not a status name", field=field)
        _check_count(count, f"{field}[{status}]")
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class CapacitySummary:
    """One row per cell, written only by that cell (so concurrent writers never race on it)."""

    cell_id: str
    vcpus_total: int
    vcpus_free: int
    mem_mb_total: int
    mem_mb_free: int
    disk_gb_total: int
    disk_gb_free: int
    instances: int
    hosts_up: int
    updated_at_ms: int
    # The live (not DELETED) instances by the status the cell observes; empty from cells that predate it.
    instances_by_status: Mapping[str, int] = field(default_factory=dict)
    # The cell's provider networks: name -> IPv4 addresses a build could get now (UNLIMITED_ADDRESSES for
    # a network without an IPv4 pool: its guests' EUI-64 IPv6 addresses never run out), and which one a
    # create that names none gets. Empty: a cell whose guests get no NIC (or one that predates networks).
    networks: Mapping[str, int] = field(default_factory=dict)
    default_network: str = ""

    def __post_init__(self) -> None:
        check_id(self.cell_id, "cell_id")
        for name in ("vcpus", "mem_mb", "disk_gb"):
            total = _check_count(getattr(self, f"{name}_total"), f"{name}_total")
            if _check_count(getattr(self, f"{name}_free"), f"{name}_free") > total:
                raise InvalidArgument(f"{name}_free exceeds {name}_total", field=f"{name}_free")
        _check_count(self.instances, "instances")
        _check_count(self.hosts_up, "hosts_up")
        check_ms(self.updated_at_ms, "updated_at_ms")
        by_status = _check_status_counts(self.instances_by_status, "instances_by_status")
        object.__setattr__(self, "instances_by_status", by_status)
        object.__setattr__(self, "networks", _check_networks(self.networks, self.default_network))


UNLIMITED_ADDRESSES = -1


def _check_networks(networks: Mapping[str, int], default: str) -> dict[str, int]:
    if len(networks) > MAX_NETWORKS:
        raise InvalidArgument(
            f"networks has {len(networks)} entries; at most {MAX_NETWORKS}", field="networks"
        )
    for name, free in networks.items():
        check_network_name(name, "networks")
        if isinstance(free, bool) or not isinstance(free, int) or free < UNLIMITED_ADDRESSES:
            raise InvalidArgument(f"networks[{name}] {free!r} must be a count >= 0 or -1", field="networks")
    if default and default not in networks:
        raise InvalidArgument(
            f"default_network {shown(default)} is not one of networks", field="default_network"
        )
    if networks and not default:
        raise InvalidArgument("default_network is required with networks", field="default_network")
    return dict(sorted(networks.items()))


def _check_rate(value: float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{field} {value!r} must be a finite non-negative number", field=field)
    return float(value)


class RevocationKind(enum.StrEnum):
    TOKEN = "token"  # one token, by its id (jti)
    TENANT = "tenant"  # every token of a tenant issued before a time


@dataclass(frozen=True)
class Revocation:
    """A revoked token (key: its jti) or a tenant's tokens issued before `issued_before_ms` (key: the
    tenant). Kept until no token it covers can still be valid (`until_ms`), then the row expires."""

    kind: RevocationKind
    key: str
    issued_before_ms: int  # TENANT: tokens issued (iat) before this are revoked; TOKEN: unused (0)
    revoked_at_ms: int
    until_ms: int
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RevocationKind(self.kind))
        if self.kind is RevocationKind.TENANT:
            check_tenant(self.key)
        elif not isinstance(self.key, str) or not _TOKEN_ID.fullmatch(self.key):
            raise InvalidArgument(
                f"token id {shown(self.key)} must be 16-64 hex characters", field="token_id"
            )
        for name in ("issued_before_ms", "revoked_at_ms", "until_ms"):
            check_ms(getattr(self, name), name)
        if not isinstance(self.reason, str) or len(self.reason) > 256:
            raise InvalidArgument("reason must be at most 256 characters", field="reason")


_TOKEN_ID = re.compile(r"[0-9a-f]{16,64}")


@dataclass(frozen=True)
class RouterReport:
    """What a router publishes about itself with every heartbeat: its own traffic over the last
    `window_ms` and the RTT it measures to every site. Written only by that router; kept (TTL'd) past
    its heartbeat so readers can show a dead router's last report with its age."""

    router_id: str
    site_id: str
    reported_at_ms: int
    window_ms: int
    requests_per_second: float
    errors_per_second: float
    p99_latency_ms: float | None  # None: no request finished in the window
    rtt_ms: Mapping[str, float] = field(default_factory=dict)  # site -> RTT to its nearest cell

    def __post_init__(self) -> None:
        check_id(self.router_id, "router_id")
        check_id(self.site_id, "site_id")
        check_ms(self.reported_at_ms, "reported_at_ms")
        if isinstance(self.window_ms, bool) or not isinstance(self.window_ms, int) or self.window_ms < 1:
            raise InvalidArgument(f"window_ms {self.window_ms!r} must be a positive int", field="window_ms")
        requests = _check_rate(self.requests_per_second, "requests_per_second")
        errors = _check_rate(self.errors_per_second, "errors_per_second")
        if errors > requests * (1 + 1e-9):
            raise InvalidArgument("errors_per_second exceeds requests_per_second", field="errors_per_second")
        object.__setattr__(self, "requests_per_second", requests)
        object.__setattr__(self, "errors_per_second", errors)
        if self.p99_latency_ms is not None:
            object.__setattr__(self, "p99_latency_ms", _check_rate(self.p99_latency_ms, "p99_latency_ms"))
        if len(self.rtt_ms) > 1000:
            raise InvalidArgument("rtt_ms names more than 1000 sites", field="rtt_ms")
        rtts = {check_id(s, "rtt_ms"): _check_rate(v, f"rtt_ms[{s}]") for s, v in self.rtt_ms.items()}
        object.__setattr__(self, "rtt_ms", dict(sorted(rtts.items())))


@dataclass(frozen=True)
class IndexEntry:
    """Where an instance lives and its coarse state: an index, never the truth of runtime state."""

    instance_id: str
    home_cell: str
    owner_cell: str
    tenant: str
    name: str
    flavor: str
    status: InstanceStatus
    created_at_ms: int
    updated_at_ms: int
    addresses: tuple[NicAddress, ...] = ()  # one per NIC (fedlib.addresses): a cut-off cell's still show

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", check_addresses(self.addresses))
        _check_instance(self.instance_id, self.home_cell)
        check_id(self.owner_cell, "owner_cell")
        check_tenant(self.tenant)
        check_display_name(self.name)
        check_display_name(self.flavor, "flavor")
        object.__setattr__(self, "status", stored_status(self.status))
        check_ms(self.created_at_ms, "created_at_ms")
        check_ms(self.updated_at_ms, "updated_at_ms")


@dataclass(frozen=True)
class ListingEntry:
    """One instance in its tenant's listing; `site_id` is denormalised so a site filter needs no join."""

    tenant: str
    instance_id: str
    name: str
    created_at_ms: int
    owner_cell: str
    site_id: str
    flavor: str
    status: InstanceStatus
    updated_at_ms: int
    addresses: tuple[NicAddress, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", check_addresses(self.addresses))
        check_tenant(self.tenant)
        parse_instance_id(self.instance_id)
        check_display_name(self.name)
        check_ms(self.created_at_ms, "created_at_ms")
        check_id(self.owner_cell, "owner_cell")
        check_id(self.site_id, "site_id")
        check_display_name(self.flavor, "flavor")
        object.__setattr__(self, "status", stored_status(self.status))
        check_ms(self.updated_at_ms, "updated_at_ms")

    @staticmethod
    def from_index(entry: IndexEntry, site_id: str) -> ListingEntry:
        return ListingEntry(
            tenant=entry.tenant,
            instance_id=entry.instance_id,
            name=entry.name,
            created_at_ms=entry.created_at_ms,
            owner_cell=entry.owner_cell,
            site_id=site_id,
            flavor=entry.flavor,
            status=entry.status,
            updated_at_ms=entry.updated_at_ms,
            addresses=entry.addresses,
        )


@dataclass(frozen=True)
class ListPage:
    entries: tuple[ListingEntry, ...]
    # None when the listing is exhausted. A page may hold fewer entries than asked (even none) with a
    # token: a selective filter stops at its scan budget rather than making one page cost the whole list.
    next_token: str | None


@dataclass(frozen=True)
class IdempotencyRecord:
    """A claim of (tenant, request id) made in `region` (the claiming router's DC)."""

    region: str
    tenant: str
    request_id: str
    instance_id: str
    fingerprint: str
    created_at_ms: int

    def __post_init__(self) -> None:
        check_id(self.region, "region")
        check_tenant(self.tenant)
        check_request_id(self.request_id)
        parse_instance_id(self.instance_id)
        if not 1 <= len(self.fingerprint) <= 128:
            raise InvalidArgument("fingerprint must be 1-128 chars", field="fingerprint")
        check_ms(self.created_at_ms, "created_at_ms")


@dataclass(frozen=True)
class ClaimOutcome:
    """`won` is True when this call created the record; otherwise `record` is the earlier claim."""

    record: IdempotencyRecord
    won: bool


def check_request_id(value: str, field: str = "request_id") -> str:
    ok = 1 <= len(value or "") <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in value)
    if not ok:
        raise InvalidArgument(f"{field} {value!r} must be 1-64 chars of [A-Za-z0-9_-]", field=field)
    return value


def _check_instance(instance_id: str, home_cell: str) -> None:
    parsed = parse_instance_id(instance_id)
    if parsed.home_cell != home_cell:
        raise InvalidArgument(
            f"home_cell {home_cell!r} differs from the cell encoded in {instance_id!r}", field="home_cell"
        )
