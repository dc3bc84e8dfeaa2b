"""The pacing of the cell's full re-assert sweep: which live instances to write again now. Pure: ids and
time in, a batch and the next state out.

A sweep walks the live instance ids in sorted order with a keyset cursor (strictly after the last id
visited), so instances created or deleted during a sweep never shift the others: every instance live for
the whole sweep is visited exactly once, a new one (published when it was made) waits for the next sweep.
Visits are spread evenly over 90% of the period (`ceil(total * elapsed / spread)` by now) and never
faster than the rate limit, so a cell of 10,000 instances writes a few rows a second, not a burst; an
empty cell visits nothing and starts its next sweep one period after this one began. When the rate
limit cannot cover the cell in one period, the sweep takes longer (the rate limit wins: cost is capped)
and the sweep duration shows it.

A sweep also rotates the cell's listing generation (cell.reassert), so deletes leave tombstones in the
partitions readers read only until the next commit. When more than `early_after_deletes` instances (or a
quarter of the live ones, if more) were deleted since the last sweep began, the next sweep starts at
once and runs at the rate limit instead of the spread: a burst of deletes is cleaned up in seconds.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from fedlib.errors import InvalidArgument


@dataclass(frozen=True)
class Pacing:
    period_ms: int  # a sweep covers every live instance within this (unless the rate limit forbids)
    max_rows_per_s: float  # the cost cap, in rows written
    rows_per_visit: int = 5  # an index row and two listing rows in each of two generations (cell.publisher)
    early_after_deletes: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.period_ms, bool) or not isinstance(self.period_ms, int) or self.period_ms < 1000:
            raise InvalidArgument("reassert period must be at least 1 s", field="reassert_period_s")
        if not self.max_rows_per_s > 0 or math.isinf(self.max_rows_per_s):
            raise InvalidArgument(
                "reassert rate must be a positive number of rows/s", field="reassert_rows_per_s"
            )
        if self.rows_per_visit < 1:
            raise InvalidArgument("rows_per_visit must be >= 1", field="rows_per_visit")

    @property
    def visits_per_s(self) -> float:
        return self.max_rows_per_s / self.rows_per_visit


@dataclass(frozen=True)
class Sweep:
    """Where a sweep is. `total` is the live count when it began (what the even spread divides)."""

    started_ms: int
    total: int
    visited: int = 0
    cursor: str | None = None  # the last id visited; None: nothing yet
    done: bool = False
    urgent: bool = False  # started early by deletes: only the rate limit paces it


@dataclass(frozen=True)
class Step:
    visit: tuple[str, ...]  # ids to re-assert now, in order
    sweep: Sweep
    finished: Sweep | None = None  # the sweep that completed in this step (for its duration)
    started: bool = False  # this step began a new sweep (the caller opens a listing generation)


def start(now_ms: int, live_ids: Sequence[str], *, urgent: bool = False) -> Sweep:
    return Sweep(started_ms=now_ms, total=len(live_ids), urgent=urgent)


def step(
    pacing: Pacing, sweep: Sweep, live_ids: Sequence[str], now_ms: int, deletes_since_start: int = 0
) -> Step:
    """`live_ids` must be sorted. A finished sweep restarts one period after it began (or at once after
    many deletes); until then nothing is visited (an empty or fully swept cell costs nothing)."""
    started = False
    if sweep.done:
        urgent = deletes_since_start > max(pacing.early_after_deletes, len(live_ids) // 4)
        if now_ms < sweep.started_ms + pacing.period_ms and not urgent:
            return Step((), sweep)
        sweep, started = start(now_ms, live_ids, urgent=urgent), True
    elapsed = max(0, now_ms - sweep.started_ms)
    # Spread over 90% of the period, so ticks of a second or more still finish within it. Past that only
    # the rate limit holds the sweep back (ids added after the cursor still get their turn).
    spread_ms = pacing.period_ms * 9 // 10
    spread = sweep.total * elapsed / spread_ms if elapsed < spread_ms and not sweep.urgent else math.inf
    by_spread = math.ceil(spread) if spread < math.inf else len(live_ids) + sweep.visited
    by_rate = math.floor(pacing.visits_per_s * elapsed / 1000)
    allowed = max(0, min(by_spread, by_rate) - sweep.visited)
    begin = 0 if sweep.cursor is None else bisect.bisect_right(live_ids, sweep.cursor)
    batch = tuple(live_ids[begin : begin + allowed])
    cursor = batch[-1] if batch else sweep.cursor
    exhausted = begin + len(batch) >= len(live_ids)
    after = Sweep(sweep.started_ms, sweep.total, sweep.visited + len(batch), cursor, exhausted, sweep.urgent)
    return Step(batch, after, finished=after if exhausted else None, started=started)
