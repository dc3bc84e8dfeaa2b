"""The chaos run's nemesis as a plan: from a seeded RNG, the run's length and the federation's components,
which fault happens when, to what, for how long. Pure (no processes, no clock): the same seed gives the
same plan, so a run that found a defect can be replayed. localfed.bench.chaos carries the plan out.

Kinds are pluggable: each is a `FaultKind` that picks its target from the `Targets`; the edge maps a
kind's name to how it is injected and repaired (localfed.bench.chaos.INJECTORS). FENCE-HOST HOOK: a
"fence" kind (a host's lease withheld until its agent stops its guests) plugs in here as one more
FaultKind over `Targets.agents`, plus one injector, once host leases exist; nothing else changes."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Targets:
    """What the nemesis may hit: component names ('router:par1', 'cell:par1', 'agent:par1-h1',
    'cassandra:eu-west') and the site each belongs to; the sites whose WAN links may be cut."""

    components: Mapping[str, str]  # component -> its site
    sites: tuple[str, ...]

    def of_role(self, *roles: str) -> list[str]:
        return sorted(c for c in self.components if c.partition(":")[0] in roles)


@dataclass(frozen=True)
class Planned:
    """One fault to inject at `at` (seconds after the load starts) and, for a pause or a cut, to repair
    `hold_s` later; a kill is repaired by the supervisor."""

    at: float
    kind: str
    target: str
    site: str
    hold_s: float


class FaultKind(Protocol):
    @property
    def name(self) -> str: ...

    def pick(self, rng: random.Random, targets: Targets) -> tuple[str, str] | None:
        """(target, site), or None when this federation has nothing for it."""
        ...


@dataclass(frozen=True)
class ComponentFault:
    """SIGKILL ('kill') or SIGSTOP then SIGCONT ('pause') of a process of one of `roles`."""

    name: str
    roles: tuple[str, ...] = ("router", "cell", "agent", "cassandra")

    def pick(self, rng: random.Random, targets: Targets) -> tuple[str, str] | None:
        candidates = targets.of_role(*self.roles)
        if not candidates:
            return None
        target = rng.choice(candidates)
        return target, targets.components[target]


@dataclass(frozen=True)
class CutSite:
    """Every WAN link of one site (its router's paths and its Cassandra DC's) drops, then heals."""

    name: str = "cut"

    def pick(self, rng: random.Random, targets: Targets) -> tuple[str, str] | None:
        if len(targets.sites) < 2:
            return None
        site = rng.choice(targets.sites)
        return site, site


KINDS: dict[str, FaultKind] = {
    "kill": ComponentFault("kill"),
    "pause": ComponentFault("pause"),
    "cut": CutSite(),
}


def plan(
    rng: random.Random,
    targets: Targets,
    *,
    duration_s: float,
    interval_s: float,
    kinds: Sequence[str] = ("kill", "pause", "cut"),
    hold_s: tuple[float, float] = (4.0, 12.0),
    quiet_start_s: float = 5.0,
) -> list[Planned]:
    """A fault every `interval_s` from `quiet_start_s` until `duration_s`, the kind chosen uniformly.
    Holds end before the next fault begins (at most 3/4 of the interval), so each failure is
    attributable to one fault; the last fault is repaired before the load ends."""
    if interval_s <= 0 or duration_s <= 0:
        raise ValueError("duration_s and interval_s must be positive")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown nemesis kinds {unknown}; known: {sorted(KINDS)}")
    low, high = hold_s
    high = min(high, 0.75 * interval_s)
    low = min(low, high)
    out = []
    at = quiet_start_s
    while at + high < duration_s:
        kind = KINDS[rng.choice(list(kinds))]
        picked = kind.pick(rng, targets)
        if picked is not None:
            out.append(
                Planned(round(at, 3), kind.name, picked[0], picked[1], round(rng.uniform(low, high), 3))
            )
        at += interval_s
    return out
