"""How long one in-cell placement decision takes over a synthetic cell of N hosts.

Measures `cell.placement.place` alone (the controller's hot path under its claim lock), not building
the host views: a controller keeps those between decisions and rebuilds only the hosts that changed.
Synthetic hosts are seeded, so two runs on one machine compare like with like; read the numbers as
ratios (1,000 vs 10,000 hosts) rather than absolutes on a shared CI box.
"""

from __future__ import annotations

import gc
import math
import random
import time

from cell.placement import HostView, PlacementRequest, Policy, place
from fedlib.catalog import FLAVORS

# (physical vCPUs, memory MB, disk GB): the mix of a small point-of-presence rack.
_HOST_SHAPES = ((16, 65_536, 1_000), (32, 131_072, 2_000), (64, 262_144, 4_000))
_GROUPS = ("db", "web", "cache")


def synthetic_hosts(n_hosts: int, rng: random.Random) -> list[HostView]:
    """A cell at 0-90% use per resource, with 2% of hosts down and 1% disabled."""
    hosts = []
    for i in range(n_hosts):
        vcpus, mem, disk = rng.choice(_HOST_SHAPES)
        fill = rng.random() * 0.9
        hosts.append(
            HostView(
                f"host-{i}",
                up=rng.random() >= 0.02,
                disabled=rng.random() < 0.01,
                vcpus_total=vcpus,
                memory_mb_total=mem,
                disk_gb_total=disk,
                vcpus_used=int(vcpus * 4.0 * fill * rng.random()),
                memory_mb_used=int(mem * fill),
                disk_gb_used=int(disk * fill * rng.random()),
                instance_count=int(fill * 40),
                groups=frozenset(g for g in _GROUPS if rng.random() < 0.2),
            )
        )
    return hosts


def synthetic_requests(count: int, rng: random.Random) -> list[PlacementRequest]:
    flavors = list(FLAVORS.values())
    return [
        PlacementRequest(
            rng.choice(flavors),
            rng.choice(list(Policy)),
            group=rng.choice((None, None, *_GROUPS)),
        )
        for _ in range(count)
    ]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


def time_placement(n_hosts: int, repeats: int, seed: int = 1) -> dict[str, float | int]:
    """Wall p50/p99/max/mean and CPU p50/p99 of one decision in microseconds, over `repeats` requests."""
    if n_hosts < 1 or repeats < 1:
        raise ValueError("n_hosts and repeats must be >= 1")
    rng = random.Random(seed)
    hosts = synthetic_hosts(n_hosts, rng)
    requests = synthetic_requests(repeats, rng)
    place(requests[0], hosts)  # warm caches and the allocator before timing
    gc.collect()
    wall, cpu, placed = [], [], 0
    for request in requests:
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        decision = place(request, hosts)
        cpu.append((time.thread_time_ns() - start_cpu) / 1000)
        wall.append((time.perf_counter_ns() - start) / 1000)
        placed += decision.host_id is not None
    wall.sort()
    cpu.sort()
    return {
        "n_hosts": n_hosts,
        "repeats": repeats,
        "p50_us": round(percentile(wall, 0.50), 1),
        "p99_us": round(percentile(wall, 0.99), 1),
        "max_us": round(wall[-1], 1),
        "mean_us": round(sum(wall) / len(wall), 1),
        # CPU time of this thread: what the decision costs, unlike wall time, which a busy machine inflates.
        "cpu_p50_us": round(percentile(cpu, 0.50), 1),
        "cpu_p99_us": round(percentile(cpu, 0.99), 1),
        "ns_per_host_cpu_p50": round(percentile(cpu, 0.50) * 1000 / n_hosts, 1),
        "placed": placed,
    }
