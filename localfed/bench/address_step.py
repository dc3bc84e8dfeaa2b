"""What a NIC costs the cell core's build step, at a given number of addresses already held: the same
cell (hosts, instances, flavors) with and without a provider network, side by side. The network's
/16 pool never runs out here, so this measures choosing and recording an address and a MAC, not
exhaustion. A benchmark, not a test: it prints figures; read them as ratios."""

from __future__ import annotations

import gc
import ipaddress
import time
from dataclasses import replace

from cell import events as ev
from cell import lifecycle as lc
from cell.core import CellCore, CoreSettings
from cell.hosts import HostState
from cell.records import CellInstance, InstanceSpec, Port
from fedlib.catalog import FLAVORS
from fedlib.macs import mac_for
from fedlib.networks import parse_network
from localfed.bench.placement import percentile

_NOW_MS = 1_000
_CELL = "bench-c1"
NETWORK = parse_network({
    "name": "public", "bridge": "br-public", "default": True,
    "ipv4": {"cidr": "10.0.0.0/16", "gateway": "10.0.0.1", "pool": ["10.0.0.2", "10.0.255.254"]},
    "ipv6": {"prefix": "2001:db8::/64", "gateway": "2001:db8::1"},
})  # fmt: skip
_FLAVOR = FLAVORS["m1.tiny"]


def _cell(held: int, n_hosts: int, with_network: bool) -> CellCore:
    hosts = [
        HostState(f"host-{i}", "test:///", 1024, 1 << 24, 1 << 20, 4.0, 1.0, connected=True, last_seen_ms=0)
        for i in range(n_hosts)
    ]
    first = int(NETWORK.ipv4.pool_start) if NETWORK.ipv4 else 0
    instances = []
    for n in range(held):
        iid = f"{_CELL}.{n:026d}"
        spec = InstanceSpec(iid, "acme", f"vm-{n}", _FLAVOR, "debian-12", 0)
        record = lc.Instance(iid, f"host-{n % n_hosts}", lc.State.ACTIVE, 2, 0)
        port = Port("public", mac_for(_CELL, n), n, ipaddress.IPv4Address(first + n))
        instances.append(CellInstance(spec, record, True, (port,) if with_network else ()))
    settings = CoreSettings(_CELL, networks=(NETWORK,) if with_network else ())
    return CellCore.restore(settings, hosts, instances)


def time_address_build(held: int, repeats: int, n_hosts: int = 100) -> dict[str, float | int]:
    """CPU p50/p99 in microseconds of one build step at `held` live instances, with a NIC (an address
    and a MAC from a /16) and without (the same cell declaring no network)."""
    if held < 0 or repeats < 1 or n_hosts < 1:
        raise ValueError("held must be >= 0, repeats and n_hosts >= 1")
    figures: dict[str, float | int] = {"held": held, "repeats": repeats, "n_hosts": n_hosts}
    for label, with_network in (("without", False), ("with", True)):
        core = _cell(held, n_hosts, with_network)
        samples = []
        gc.collect()
        for n in range(repeats):
            spec = InstanceSpec(f"{_CELL}.{held + n:026d}", "acme", "b", _FLAVOR, "debian-12", _NOW_MS)
            start = time.thread_time_ns()
            ready = core.step(ev.BuildRequested(spec), _NOW_MS)
            samples.append((time.thread_time_ns() - start) / 1000)
            core.advance(replace(ready))
        samples.sort()
        figures[f"{label}_cpu_p50_us"] = round(percentile(samples, 0.50), 1)
        figures[f"{label}_cpu_p99_us"] = round(percentile(samples, 0.99), 1)
    figures["ratio_p50"] = round(figures["with_cpu_p50_us"] / max(figures["without_cpu_p50_us"], 0.1), 2)
    return figures


if __name__ == "__main__":
    for held in (0, 1_000, 10_000):
        print(time_address_build(held, 200))
