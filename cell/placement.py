"""In-cell placement: choose a compute host for a flavor, explain the choice, keep the claim arithmetic.

Pure: no I/O, no clock. The controller builds `HostView`s (agent heartbeats for up/down, the ledger for
usage), calls `place`, then `CapacityLedger.claim` under its one lock and persists the claim. Placement
only ranks; the ledger alone decides whether a claim fits, so a stale view can never over-commit a host.

Cost: `place` is one pass over the hosts keeping a pool of O(max_candidates) (O(n log k) worst case);
capacity, free room and utilization are computed once per `HostView` at construction, not per decision.
Measured with localfed.bench.placement.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from fedlib.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from fedlib.flavor import RESOURCES, UNITS, Flavor, Resources

__all__ = ["Flavor", "Resources"]  # the shared vocabulary, used here; defined in fedlib.flavor

# Floats: 10 * 0.7 == 7.000000000000001 and 100 * 0.29 == 28.999999999999996; nudge before rounding down
# so a ratio written as a decimal means what the operator typed.
_EPS = 1e-9


def capacity(total: int, ratio: float) -> int:
    """Schedulable amount of one resource: the physical total scaled by its allocation ratio."""
    return math.floor(total * ratio + _EPS)


class Policy(enum.Enum):
    PACK = "pack"  # fill the most-used host first: keeps whole hosts free for big flavors and maintenance
    SPREAD = "spread"  # least-used first: fewer noisy neighbours, smaller blast radius per host


@dataclass(frozen=True, slots=True)
class HostView:
    """One host as placement sees it. Totals are physical, less what the host reserves for itself."""

    host_id: str
    up: bool
    disabled: bool
    vcpus_total: int
    memory_mb_total: int
    disk_gb_total: int
    vcpus_used: int = 0
    memory_mb_used: int = 0
    disk_gb_used: int = 0
    cpu_allocation_ratio: float = 4.0
    memory_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    instance_count: int = 0
    groups: frozenset[str] = frozenset()  # anti-affinity groups with a member on this host
    # Derived once here, so a decision over 10,000 hosts does no float work or allocation per host.
    capacity: Resources = field(init=False, repr=False, compare=False)
    free: Resources = field(init=False, repr=False, compare=False)  # < 0 when a lowered ratio over-commits
    utilization: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in _HOST_COUNTS:
            if getattr(self, name) < 0:
                raise InvalidArgument(f"host {self.host_id}: {name} must be >= 0", field=name)
        for name in _HOST_RATIOS:
            if not getattr(self, name) > 0:
                raise InvalidArgument(f"host {self.host_id}: {name} must be > 0", field=name)
        cap = Resources(
            capacity(self.vcpus_total, self.cpu_allocation_ratio),
            capacity(self.memory_mb_total, self.memory_allocation_ratio),
            capacity(self.disk_gb_total, self.disk_allocation_ratio),
        )
        object.__setattr__(self, "capacity", cap)
        object.__setattr__(self, "free", cap - self.used)
        object.__setattr__(self, "utilization", _dominant_share(self.used, cap))

    @property
    def used(self) -> Resources:
        return Resources(self.vcpus_used, self.memory_mb_used, self.disk_gb_used)


_HOST_COUNTS = tuple(f"{r}_{kind}" for kind in ("total", "used") for r in RESOURCES)
_HOST_RATIOS = ("cpu_allocation_ratio", "memory_allocation_ratio", "disk_allocation_ratio")


def _dominant_share(used: Resources, cap: Resources) -> float:
    """The largest used fraction over the resources (DRF's dominant share): how full the host really is."""
    shares = [getattr(used, r) / getattr(cap, r) for r in RESOURCES if getattr(cap, r) > 0]
    return max(shares, default=1.0)


@dataclass(frozen=True)
class PlacementRequest:
    flavor: Flavor
    policy: Policy = Policy.PACK
    group: str | None = None  # anti-affinity group: prefer hosts holding no member
    strict_group: bool = False  # refuse rather than co-locate two members
    avoid_hosts: frozenset[str] = frozenset()  # e.g. hosts where this build already failed


@dataclass(frozen=True)
class Candidate:
    host_id: str
    utilization: float
    instance_count: int
    free: Resources  # before this placement
    holds_group_member: bool


@dataclass(frozen=True)
class ResourceShortfall:
    resource: str  # one of RESOURCES
    needed: int
    hosts_short: int
    best_host: str | None
    best_free: int


@dataclass(frozen=True)
class Shortfall:
    message: str
    resources: tuple[ResourceShortfall, ...]
    hosts_total: int
    hosts_down: int
    hosts_disabled: int
    hosts_avoided: int
    hosts_group_blocked: int  # fit, but refused by strict anti-affinity


@dataclass(frozen=True)
class PlacementDecision:
    host_id: str | None
    candidates: tuple[Candidate, ...]  # best first; candidates[0] is the chosen host
    shortfall: Shortfall | None
    group_honoured: bool  # False only when a soft anti-affinity group had to share the chosen host

    def require(self) -> str:
        """The chosen host, or ResourceExhausted carrying the shortfall (for the gRPC edge)."""
        if self.host_id is None:
            raise ResourceExhausted(self.shortfall.message if self.shortfall else "no host fits")
        return self.host_id


def place(request: PlacementRequest, hosts: Sequence[HostView], max_candidates: int = 5) -> PlacementDecision:
    """Rank fitting hosts (anti-affinity first, then policy) and choose the best; explain a failure."""
    k = max(1, max_candidates)
    nv, nm, nd = request.flavor.vcpus, request.flavor.memory_mb, request.flavor.disk_gb
    group, avoid, strict = request.group, request.avoid_hosts, request.strict_group
    sign = -1 if request.policy is Policy.PACK else 1
    # Keys sort ascending: (group member, policy score, instance count, id, index). A host whose
    # (member, score) is already worse than the k-th best so far is dropped before any tuple is built,
    # so the pool stays O(k) and the pass costs little per host. The index keeps hosts out of comparisons.
    pool: list[tuple[bool, float, int, str, int]] = []
    cut_member, cut_score, blocked = True, math.inf, 0
    for i, h in enumerate(hosts):
        f = h.free
        if f.vcpus < nv or f.memory_mb < nm or f.disk_gb < nd or not h.up or h.disabled or h.host_id in avoid:
            continue
        member, score = group is not None and group in h.groups, sign * h.utilization
        if member and strict:
            blocked += 1
        elif member < cut_member or (member == cut_member and score <= cut_score):
            pool.append((member, score, sign * h.instance_count, h.host_id, i))
            if len(pool) >= 4 * k:
                pool = heapq.nsmallest(k, pool)
                cut_member, cut_score = pool[-1][0], pool[-1][1]
    best = heapq.nsmallest(k, pool)
    if not best:
        return PlacementDecision(None, (), _shortfall(request, hosts, blocked), True)
    candidates = tuple(
        Candidate(hosts[i].host_id, hosts[i].utilization, hosts[i].instance_count, hosts[i].free, member)
        for member, _, _, _, i in best
    )
    return PlacementDecision(candidates[0].host_id, candidates, None, not best[0][0])


def _shortfall(request: PlacementRequest, hosts: Sequence[HostView], blocked: int) -> Shortfall:
    """Second pass, only on failure: which resource was short, on how many hosts, and the closest host."""
    need = request.flavor.resources
    short = dict.fromkeys(RESOURCES, 0)
    best: dict[str, tuple[int, str | None]] = dict.fromkeys(RESOURCES, (-(1 << 62), None))
    down = disabled = avoided = 0
    for h in hosts:
        if not h.up:
            down += 1
        elif h.disabled:
            disabled += 1
        elif h.host_id in request.avoid_hosts:
            avoided += 1
        else:
            for r in h.free.short_of(need):
                short[r] += 1
            for r in RESOURCES:
                if getattr(h.free, r) > best[r][0]:
                    best[r] = (getattr(h.free, r), h.host_id)
    per = tuple(
        ResourceShortfall(r, getattr(need, r), short[r], best[r][1], max(best[r][0], 0))
        for r in RESOURCES
        if short[r]
    )
    parts = [
        f"no host with {s.needed} free {UNITS[s.resource]} (short on {s.hosts_short} hosts; "
        f"best: {s.best_host} with {s.best_free})"
        for s in per
    ]
    if blocked:
        parts.append(f"{blocked} fitting hosts already hold a member of group {request.group!r}")
    if not parts:
        parts.append("no host is up, enabled and not avoided")
    tail = f"{len(hosts)} hosts: {down} down, {disabled} disabled, {avoided} avoided"
    message = f"cannot place flavor {request.flavor.describe()}: {'; '.join(parts)} [{tail}]"
    return Shortfall(message, per, len(hosts), down, disabled, avoided, blocked)


@dataclass(frozen=True)
class HostCapacity:
    """What the ledger knows of a host: physical totals (less its own reserve) and allocation ratios."""

    host_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    cpu_allocation_ratio: float = 4.0
    memory_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0

    @property
    def schedulable(self) -> Resources:
        return Resources(
            capacity(self.vcpus, self.cpu_allocation_ratio),
            capacity(self.memory_mb, self.memory_allocation_ratio),
            capacity(self.disk_gb, self.disk_allocation_ratio),
        )


@dataclass(frozen=True)
class Claim:
    instance_id: str
    host_id: str
    flavor_name: str
    amount: Resources
    group: str | None = None


@dataclass(frozen=True)
class _Usage:
    amount: Resources = field(default_factory=Resources)
    count: int = 0
    groups: tuple[str, ...] = ()  # a multiset: one entry per claim that named a group

    def plus(self, c: Claim) -> _Usage:
        groups = (*self.groups, c.group) if c.group else self.groups
        return _Usage(self.amount + c.amount, self.count + 1, groups)

    def minus(self, c: Claim) -> _Usage:
        groups = list(self.groups)
        if c.group:
            groups.remove(c.group)
        return _Usage(self.amount - c.amount, self.count - 1, tuple(groups))


_NO_USAGE = _Usage()


class CapacityLedger:
    """Immutable record of what the cell has promised each host. Every change returns a new ledger.

    Claims, not agent reports, are the truth for over-commit: the libvirt test driver enforces nothing
    and a report lags a claim. Loading persisted claims never fails (a lowered ratio may leave a host
    over-committed); only new claims are refused. A change copies two dicts: O(hosts + claims) at C speed.
    """

    __slots__ = ("_claims", "_hosts", "_usage")

    def __init__(self, hosts: Iterable[HostCapacity] = (), claims: Iterable[Claim] = ()) -> None:
        # Private dicts, never mutated after construction, so ledgers share those a change leaves alone.
        self._hosts: dict[str, HostCapacity] = {h.host_id: h for h in hosts}
        self._claims: dict[str, Claim] = {c.instance_id: c for c in claims}
        self._usage: dict[str, _Usage] = {}
        for c in self._claims.values():
            self._usage[c.host_id] = self._usage.get(c.host_id, _NO_USAGE).plus(c)

    @property
    def hosts(self) -> Mapping[str, HostCapacity]:
        return MappingProxyType(self._hosts)

    @property
    def claims(self) -> Mapping[str, Claim]:
        return MappingProxyType(self._claims)

    def used(self, host_id: str) -> Resources:
        return self._usage.get(host_id, _NO_USAGE).amount

    def free(self, host_id: str) -> Resources:
        """Schedulable minus claimed; negative when a lowered ratio left the host over-committed."""
        return self._host(host_id).schedulable - self.used(host_id)

    def view(self, host_id: str, *, up: bool, disabled: bool) -> HostView:
        """The placement view of a host: totals and usage from the ledger, liveness from the caller."""
        h, u = self._host(host_id), self._usage.get(host_id, _NO_USAGE)
        return HostView(
            host_id, up, disabled, h.vcpus, h.memory_mb, h.disk_gb,
            u.amount.vcpus, u.amount.memory_mb, u.amount.disk_gb,
            h.cpu_allocation_ratio, h.memory_allocation_ratio, h.disk_allocation_ratio,
            u.count, frozenset(u.groups),
        )  # fmt: skip

    def claim(
        self, host_id: str, instance_id: str, flavor: Flavor, group: str | None = None
    ) -> tuple[CapacityLedger, Claim]:
        """Reserve the flavor on the host. Repeating an identical claim returns (self, existing claim)."""
        new = Claim(instance_id, host_id, flavor.name, flavor.resources, group)
        old = self._claims.get(instance_id)
        if old is not None:
            if old == new:
                return self, old
            raise FailedPrecondition(
                f"instance {instance_id} already holds a claim for {old.flavor_name} on {old.host_id}; "
                "release it first",
                field="instance_id",
            )
        free = self.free(host_id)
        short = free.short_of(new.amount)
        if short:
            detail = ", ".join(
                f"{getattr(new.amount, r)} {UNITS[r]} needed, {getattr(free, r)} free" for r in short
            )
            raise ResourceExhausted(f"host {host_id} cannot fit flavor {flavor.name}: {detail}")
        usage = {**self._usage, host_id: self._usage.get(host_id, _NO_USAGE).plus(new)}
        return self._make(self._hosts, {**self._claims, instance_id: new}, usage), new

    def release(self, instance_id: str) -> CapacityLedger:
        """Idempotent: releasing an unknown or already released instance returns the same ledger."""
        old = self._claims.get(instance_id)
        if old is None:
            return self
        claims = dict(self._claims)
        del claims[instance_id]
        usage = {**self._usage, old.host_id: self._usage[old.host_id].minus(old)}
        return self._make(self._hosts, claims, usage)

    def with_host(self, host: HostCapacity) -> CapacityLedger:
        """Add a host or change its totals/ratios; existing claims stay even if they no longer fit."""
        return self._make({**self._hosts, host.host_id: host}, self._claims, self._usage)

    def without_host(self, host_id: str) -> CapacityLedger:
        held = self._usage.get(host_id, _NO_USAGE).count
        if held:
            raise FailedPrecondition(f"host {host_id} still holds {held} claims", field="host_id")
        hosts = dict(self._hosts)
        hosts.pop(host_id, None)
        return self._make(hosts, self._claims, self._usage)

    def _host(self, host_id: str) -> HostCapacity:
        host = self._hosts.get(host_id)
        if host is None:
            raise NotFound(f"host {host_id} is not in this cell's ledger", field="host_id")
        return host

    @classmethod
    def _make(
        cls, hosts: dict[str, HostCapacity], claims: dict[str, Claim], usage: dict[str, _Usage]
    ) -> CapacityLedger:
        ledger = cls.__new__(cls)
        ledger._hosts, ledger._claims, ledger._usage = hosts, claims, usage
        return ledger


@dataclass(frozen=True)
class CapacitySummary:
    """What a cell publishes for routers. Sums cover usable (up and enabled) hosts only."""

    hosts_total: int
    hosts_up: int
    hosts_usable: int
    instances: int
    capacity: Resources  # schedulable, after allocation ratios
    used: Resources
    free: Resources  # per-host free clamped at 0: an over-committed host must not hide room elsewhere
    largest_free: Resources  # per resource, each maximised over hosts independently
    flavor_slots: Mapping[str, int]  # how many more of each given flavor fit, one flavor at a time

    def might_fit(self, flavor: Flavor) -> bool:
        """False means it surely does not fit. True is a hint: the cell's claim is the authority."""
        if flavor.name in self.flavor_slots:
            return self.flavor_slots[flavor.name] > 0
        return not self.largest_free.short_of(flavor.resources)


def summarize(hosts: Iterable[HostView], flavors: Sequence[Flavor] = ()) -> CapacitySummary:
    total = up = usable = instances = 0
    cap, used, free, big = Resources(), Resources(), Resources(), Resources()
    slots = dict.fromkeys((f.name for f in flavors), 0)
    for h in hosts:
        total, up, instances = total + 1, up + h.up, instances + h.instance_count
        if not h.up or h.disabled:
            continue
        room = Resources(*(max(0, getattr(h.free, r)) for r in RESOURCES))
        usable, cap, used, free = usable + 1, cap + h.capacity, used + h.used, free + room
        big = Resources(*(max(getattr(big, r), getattr(room, r)) for r in RESOURCES))
        for f in flavors:
            slots[f.name] += min(getattr(room, r) // getattr(f, r) for r in RESOURCES if getattr(f, r) > 0)
    return CapacitySummary(total, up, usable, instances, cap, used, free, big, MappingProxyType(slots))
