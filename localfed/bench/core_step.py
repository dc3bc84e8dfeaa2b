"""What one build costs the cell core at N hosts, against the controller it replaced.

The core keeps a placement view per host and rebuilds only those a change touched; the old controller
built every host's view for every build before placing. Both run here over the same synthetic cell (all
hosts up, empty at the start, builds of the catalog's flavors), so the figures compare like with like:
read them as ratios. A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import gc
import random
import time

from cell import events as ev
from cell.core import CellCore, CoreSettings
from cell.hosts import HostState, is_up
from cell.placement import PlacementRequest, place
from cell.records import InstanceSpec
from fedlib.catalog import FLAVORS
from localfed.bench.placement import percentile as _percentile

_NOW_MS = 1_000  # hosts were last seen at 0: up for the core's 3 s grace


def _cell(n_hosts: int) -> CellCore:
    hosts = [
        HostState(f"host-{i}", "test:///", 64, 262_144, 4_000, 4.0, 1.0, connected=True, last_seen_ms=0)
        for i in range(n_hosts)
    ]
    return CellCore.restore(CoreSettings("bench-c1"), hosts, [])


def time_core_build(n_hosts: int, repeats: int, seed: int = 1) -> dict[str, float | int]:
    """CPU p50/p99 in microseconds of one build step (place + claim + lifecycle) at `n_hosts`, with
    the core's incremental views and with every view rebuilt per build (the old controller's way)."""
    if n_hosts < 1 or repeats < 1:
        raise ValueError("n_hosts and repeats must be >= 1")
    rng = random.Random(seed)
    flavors = list(FLAVORS.values())
    specs = [
        InstanceSpec(f"bench-c1.{n:026d}", "acme", f"vm-{n}", rng.choice(flavors), "debian-12", _NOW_MS)
        for n in range(repeats)
    ]
    core, grace = _cell(n_hosts), CoreSettings().host_grace_ms
    gc.collect()
    incremental, rebuilt = [], []
    for spec in specs:
        start = time.thread_time_ns()
        ready = core.step(ev.BuildRequested(spec), _NOW_MS)
        incremental.append((time.thread_time_ns() - start) / 1000)
        start = time.thread_time_ns()
        views = [
            core.ledger.view(h.host_id, up=is_up(h, _NOW_MS, grace), disabled=h.disabled)
            for h in core.hosts.all()
        ]
        place(PlacementRequest(spec.flavor, core.settings.policy), views)
        rebuilt.append((time.thread_time_ns() - start) / 1000)
        core.advance(ready)
    incremental.sort()
    rebuilt.sort()
    return {
        "n_hosts": n_hosts,
        "repeats": repeats,
        "core_cpu_p50_us": round(_percentile(incremental, 0.50), 1),
        "core_cpu_p99_us": round(_percentile(incremental, 0.99), 1),
        "rebuild_cpu_p50_us": round(_percentile(rebuilt, 0.50), 1),
        "rebuild_cpu_p99_us": round(_percentile(rebuilt, 0.99), 1),
        "ratio_p50": round(_percentile(rebuilt, 0.50) / max(_percentile(incremental, 0.50), 0.1), 1),
    }
