"""Listing generations: the pure bookkeeping behind the tenant listing's layout (schema version 3).

A tenant's listing rows live in partitions (tenant, owner cell, generation). Only the owning cell writes
them, so only it knows when a partition has gathered tombstones, and it never has to ask: every period
its re-assert sweep opens a new generation, writes every live instance into it (the re-assert it does
anyway), then commits it. Readers find each cell's current generation in the tenant's footprint (one row
per cell holding the tenant's instances), so a deleted instance's tombstone is read only until the next
commit, never again: the generation before is dropped whole (one partition tombstone) one period later.

Generation numbers are the cell's clock at opening (strictly increasing per cell), and double as the
footprint row's write timestamp, so a late write naming an older generation never replaces a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

FIRST_GENERATION = 1  # where a cell writes before its first commit (and where migrated rows land)


@dataclass(frozen=True)
class Generations:
    """One cell's generations. Writes go to `current` and, while a sweep fills it, `opening`; readers
    read `current` (via the footprint); `retired` (the one before) is dropped at the next commit."""

    current: int = FIRST_GENERATION
    opening: int | None = None
    retired: int | None = None

    @property
    def written(self) -> tuple[int, ...]:
        return (self.current,) if self.opening is None else (self.current, self.opening)

    def open(self, at_ms: int) -> Generations:
        """A sweep begins. An opening left by a crashed sweep is kept: the new sweep refills it."""
        if self.opening is not None:
            return self
        return replace(self, opening=max(at_ms, self.current + 1))

    def commit(self) -> tuple[Generations, int | None]:
        """The sweep wrote every live instance into `opening`: it becomes current. Returns the new state
        and the generation to drop now (retired a whole period ago, so no reader still uses it)."""
        if self.opening is None:
            return self, None
        return Generations(current=self.opening, opening=None, retired=self.current), self.retired


def footprint_ts_us(gen: int) -> int:
    """The footprint row's write timestamp: a newer generation always wins, and a row asserted in a
    generation beats the same generation's removal of the tenant (written at footprint_ts_us - 1)."""
    return gen * 1000 + 1


def drop_ts_us(at_ms: int) -> int:
    """A dropped generation's partition tombstone: a day past the commit, above any row ever written to
    it (its rows are older than the commit; nothing writes to a generation once it is retired)."""
    return (at_ms + 86_400_000) * 1000
