"""A router's own traffic over a recent window, from its cumulative counters: request rate, error rate
and p99 latency, computed the way Prometheus' rate() and histogram_quantile() compute them, so the
federation view and the recording rules tell the same story. Pure: the edge (cellapi.router.reporter)
reads the counters and the clock and hands samples in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fedlib.errors import InvalidArgument

Buckets = tuple[tuple[float, float], ...]  # (upper bound in seconds, cumulative count), ascending, last +Inf


@dataclass(frozen=True)
class Sample:
    """Cumulative counts at one moment: every request, the non-OK ones, the latency histogram."""

    at_ms: int
    requests: float
    errors: float
    buckets: Buckets

    def __post_init__(self) -> None:
        bounds = [b for b, _ in self.buckets]
        if not self.buckets or bounds != sorted(bounds) or not math.isinf(bounds[-1]):
            raise InvalidArgument("buckets must ascend and end with +Inf", field="buckets")


@dataclass(frozen=True)
class Traffic:
    window_ms: int
    requests_per_second: float
    errors_per_second: float
    p99_ms: float | None  # None: no request finished in the window


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """histogram_quantile(q) over cumulative (upper bound, count) buckets, in the buckets' unit: linear
    within the bucket holding the rank; the +Inf bucket answers with the highest finite bound."""
    if not 0 <= q <= 1:
        raise InvalidArgument(f"quantile {q} must be in [0, 1]", field="q")
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def between(old: Sample, new: Sample) -> Traffic:
    """What happened from `old` to `new`. A counter that went down means the process restarted: the
    new counts are then everything since the restart (as rate() treats a reset)."""
    reset = (
        new.requests < old.requests
        or new.errors < old.errors
        or any(n < o for (_, n), (_, o) in zip(new.buckets, old.buckets, strict=False))
        or [b for b, _ in new.buckets] != [b for b, _ in old.buckets]
    )
    base = Sample(old.at_ms, 0.0, 0.0, tuple((b, 0.0) for b, _ in new.buckets)) if reset else old
    window_ms = max(1, new.at_ms - old.at_ms)
    seconds = window_ms / 1000
    deltas = tuple((b, n - o) for (b, n), (_, o) in zip(new.buckets, base.buckets, strict=True))
    p99 = quantile(0.99, deltas)
    return Traffic(
        window_ms=window_ms,
        requests_per_second=(new.requests - base.requests) / seconds,
        errors_per_second=min(new.errors - base.errors, new.requests - base.requests) / seconds,
        p99_ms=None if p99 is None else p99 * 1000,
    )


def keep_window(samples: tuple[Sample, ...], new: Sample, window_ms: int) -> tuple[Sample, ...]:
    """`samples` plus `new`, dropping those no longer needed: the oldest kept is the newest one at or
    before the window's start, so the summary spans the whole window once enough time has passed."""
    if samples and new.at_ms < samples[-1].at_ms:
        raise InvalidArgument("samples must be taken in time order", field="at_ms")
    kept = (*samples, new)
    start = new.at_ms - window_ms
    first = 0
    for i, s in enumerate(kept):
        if s.at_ms <= start:
            first = i
    return kept[first:]


def summary(samples: Sequence[Sample]) -> Traffic | None:
    """Traffic over the samples kept by keep_window; None until there are two."""
    if len(samples) < 2:
        return None
    return between(samples[0], samples[-1])
