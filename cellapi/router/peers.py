"""What this router knows about each target it probes (cells and peer routers): RTT and health.

The table is an immutable value updated by pure functions; the prober (the edge) owns the clock, the
probe loop and the grpc.health.v1 calls, and hands each outcome in with the time it completed.

Two speeds of failure detection (DESIGN principle 5), both derived at read time from `now_ms`, so a
prober that stalls cannot leave a target looking healthy:
- fast: SUSPECT (no new work) after `fast_failures` consecutive failed probes or `fast_ms` without a
  success, whichever comes first. The probe interval must be well below `fast_ms` (e.g. 1 s vs 3 s).
- slow: OFFLINE after `slow_ms` without a success. Nothing is moved because of it; it is a label.
DEGRADED means answering but worse than usual: the RTT EWMA far above its own baseline, or (an input
from the cell's capacity summary) few hosts up.

Copying the table per observation is O(targets); with hundreds of targets probed once a second that
is a few hundred small dict copies per second, which is cheaper than a persistent map's bookkeeping.
"""

from __future__ import annotations

import bisect
import enum
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from fedlib.errors import InvalidArgument


class Health(enum.StrEnum):
    """Names match proto `cellfed.v1.Health` (HEALTH_UNSPECIFIED is never produced)."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    SUSPECT = "SUSPECT"
    OFFLINE = "OFFLINE"
    DRAINED = "DRAINED"
    HEALTH_UNKNOWN = "HEALTH_UNKNOWN"


@dataclass(frozen=True)
class DetectorConfig:
    alpha: float = 0.3  # weight of a new RTT sample in the EWMA: ~3 samples to follow a real change
    # The baseline drops at once to a lower sample (nothing beats physics, so the floor is real) and
    # creeps up slowly, so a lasting route change stops counting as degradation after ~50 samples.
    baseline_alpha: float = 0.02
    fast_failures: int = 2
    fast_ms: int = 3_000
    slow_ms: int = 60_000
    # DEGRADED by RTT needs both a ratio and an absolute jump: 1 ms -> 4 ms on a LAN is not news.
    degraded_rtt_ratio: float = 3.0
    degraded_rtt_min_jump_ms: float = 20.0
    degraded_hosts_fraction: float = 0.5  # fewer hosts up than this fraction of the cell's hosts

    def __post_init__(self) -> None:
        if not (0 < self.alpha <= 1 and 0 < self.baseline_alpha <= 1):
            raise InvalidArgument("alpha and baseline_alpha must be in (0, 1]", field="alpha")
        if self.fast_failures < 1 or not 0 < self.fast_ms < self.slow_ms:
            raise InvalidArgument("need fast_failures >= 1 and 0 < fast_ms < slow_ms", field="fast_ms")
        if self.degraded_rtt_ratio < 1 or self.degraded_rtt_min_jump_ms < 0:
            raise InvalidArgument("degraded_rtt_ratio must be >= 1", field="degraded_rtt_ratio")
        if not 0 <= self.degraded_hosts_fraction <= 1:
            raise InvalidArgument(
                "degraded_hosts_fraction must be in [0, 1]", field="degraded_hosts_fraction"
            )


@dataclass(frozen=True, slots=True)
class PeerRecord:
    target: str
    first_seen_ms: int  # first observation: "no success for X ms" counts from here until one arrives
    last_success_ms: int | None = None
    last_failure_ms: int | None = None
    consecutive_failures: int = 0
    rtt_ewma_ms: float | None = None
    rtt_baseline_ms: float | None = None


@dataclass(frozen=True)
class PeerTable:
    config: DetectorConfig = field(default_factory=DetectorConfig)
    records: Mapping[str, PeerRecord] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        # A read-only view, so a caller's dict can neither be mutated through us nor under us.
        object.__setattr__(self, "records", MappingProxyType(dict(self.records)))

    @functools.cached_property
    def sorted_jumps(self) -> list[float]:
        """Every target's RTT jump over its baseline, sorted: computed once per table (a value), so
        judging each of N candidates costs a bisect, not another pass over all N."""
        return sorted(j for r in self.records.values() if (j := _jump_ms(r)) is not None)


def _check_now(now_ms: int) -> int:
    if isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms < 0:
        raise InvalidArgument(f"now_ms {now_ms!r} must be non-negative int milliseconds", field="now_ms")
    return now_ms


def _with(state: PeerTable, record: PeerRecord) -> PeerTable:
    records = dict(state.records)
    records[record.target] = record
    return PeerTable(state.config, records)


def _fresh(state: PeerTable, target: str, now_ms: int) -> PeerRecord:
    if not target:
        raise InvalidArgument("target must be a non-empty name", field="target")
    return state.records.get(target) or PeerRecord(target=target, first_seen_ms=now_ms)


def observe_success(state: PeerTable, target: str, rtt_ms: float, now_ms: int) -> PeerTable:
    """A probe of `target` answered SERVING after `rtt_ms`, completing at `now_ms`."""
    _check_now(now_ms)
    if not (rtt_ms >= 0 and math.isfinite(rtt_ms)):
        raise InvalidArgument(f"rtt_ms {rtt_ms!r} must be finite and non-negative", field="rtt_ms")
    cfg, old = state.config, _fresh(state, target, now_ms)
    ewma, base = old.rtt_ewma_ms, old.rtt_baseline_ms
    # After an outage past the slow threshold the old samples describe another network: start over.
    if ewma is None or base is None or _silent_ms(old, now_ms) >= cfg.slow_ms:
        ewma = base = rtt_ms
    else:
        ewma += cfg.alpha * (rtt_ms - ewma)
        base = rtt_ms if rtt_ms < base else base + cfg.baseline_alpha * (rtt_ms - base)
    # Probes can complete out of order; time only moves forward for "last success".
    last = now_ms if old.last_success_ms is None else max(old.last_success_ms, now_ms)
    return _with(
        state,
        replace(old, last_success_ms=last, consecutive_failures=0, rtt_ewma_ms=ewma, rtt_baseline_ms=base),
    )


def observe_failure(state: PeerTable, target: str, now_ms: int) -> PeerTable:
    """A probe of `target` failed (error, NOT_SERVING or deadline) at `now_ms`. RTT is left alone."""
    _check_now(now_ms)
    old = _fresh(state, target, now_ms)
    last = now_ms if old.last_failure_ms is None else max(old.last_failure_ms, now_ms)
    return _with(state, replace(old, last_failure_ms=last, consecutive_failures=old.consecutive_failures + 1))


def forget(state: PeerTable, target: str) -> PeerTable:
    """Drop a target that left the directory, so the table does not grow with every cell ever seen."""
    if target not in state.records:
        return state
    return PeerTable(state.config, {k: v for k, v in state.records.items() if k != target})


def _silent_ms(record: PeerRecord, now_ms: int) -> int:
    since = record.first_seen_ms if record.last_success_ms is None else record.last_success_ms
    return max(0, now_ms - since)


def data_age_ms(state: PeerTable, target: str, now_ms: int) -> int | None:
    """Milliseconds since the last successful probe; None if there has never been one."""
    record = state.records.get(target)
    if record is None or record.last_success_ms is None:
        return None
    return max(0, _check_now(now_ms) - record.last_success_ms)


def rtt_of(state: PeerTable, target: str) -> float | None:
    """The RTT EWMA in ms, or None while the target has never answered (ranking then estimates)."""
    record = state.records.get(target)
    return None if record is None else record.rtt_ewma_ms


def health_of(
    state: PeerTable,
    target: str,
    now_ms: int,
    *,
    hosts_up: int | None = None,
    hosts_total: int | None = None,
    drained: bool = False,
) -> Health:
    """Derived health at `now_ms`. `hosts_up`/`hosts_total` come from the cell's capacity report and
    `drained` from the directory; OFFLINE outranks DRAINED because an operator needs to see it."""
    _check_now(now_ms)
    cfg, record = state.config, state.records.get(target)
    if record is None:
        return Health.DRAINED if drained else Health.HEALTH_UNKNOWN
    silent = _silent_ms(record, now_ms)
    if silent >= cfg.slow_ms:
        return Health.OFFLINE
    if drained:
        return Health.DRAINED
    if record.consecutive_failures >= cfg.fast_failures or silent >= cfg.fast_ms:
        return Health.SUSPECT
    if record.last_success_ms is None:
        return Health.HEALTH_UNKNOWN  # probed, no answer yet, not yet past a fast threshold
    if _slow_rtt(cfg, record, _shared_jump_ms(state, target)) or _few_hosts(cfg, hosts_up, hosts_total):
        return Health.DEGRADED
    return Health.HEALTHY


def _jump_ms(record: PeerRecord) -> float | None:
    ewma, base = record.rtt_ewma_ms, record.rtt_baseline_ms
    return None if ewma is None or base is None else max(0.0, ewma - base)


def _shared_jump_ms(state: PeerTable, target: str) -> float:
    """How far above their own baselines the OTHER targets' RTTs are now (the median). A probe's RTT
    includes this router's own delays (a starved event loop, a loaded machine), which every target then
    shows at once; that part says nothing about `target`, so it is taken off before judging it. Without
    it, the local cell (1 ms baseline) can turn DEGRADED on any 20 ms load stall and lose its share to remote
    cells, whose 100 ms baselines hide the same 20 ms."""
    jumps = state.sorted_jumps
    record = state.records.get(target)
    own = _jump_ms(record) if record is not None else None
    others = len(jumps) - (own is not None)
    if others <= 0:
        return 0.0
    k = others // 2  # the median's index among the others: skip our own entry if it sits at or before
    if own is not None and k >= bisect.bisect_left(jumps, own):
        k += 1
    return jumps[k]


def _slow_rtt(cfg: DetectorConfig, record: PeerRecord, shared_jump_ms: float) -> bool:
    ewma, base = record.rtt_ewma_ms, record.rtt_baseline_ms
    if ewma is None or base is None:
        return False
    own = ewma - min(shared_jump_ms, max(0.0, ewma - base))
    return own > base * cfg.degraded_rtt_ratio and own - base > cfg.degraded_rtt_min_jump_ms


def _few_hosts(cfg: DetectorConfig, hosts_up: int | None, hosts_total: int | None) -> bool:
    if hosts_up is None:
        return False
    if hosts_total is None:
        return hosts_up == 0  # without a total, only "none up" is certain to be bad
    return hosts_total > 0 and hosts_up < cfg.degraded_hosts_fraction * hosts_total
