"""The controller's periodic work, each run by fedrpc.periodic.every at its own interval: push desired
state to every connected host (level-triggered convergence), tick the core (builds that never finished),
publish the capacity summary, refresh gauges. A failed pass is logged; the next one tries again."""

from __future__ import annotations

import logging
from collections import Counter

from cell import events as ev
from cell import lifecycle as lc
from cell.controller import CellController
from cell.placement import summarize
from cell.publisher import Publisher
from replication.model import UNLIMITED_ADDRESSES, CapacitySummary

log = logging.getLogger(__name__)


async def push_desired_state(c: CellController) -> None:
    now = c.now_ms()
    for host in c.core.hosts.all():
        if host.connected:
            c.push_desired(host.host_id, now)


async def tick(c: CellController) -> None:
    """Time passing is an event of the core: builds past the build timeout become ERROR with that
    fault, and placement re-reads which hosts went silent."""
    await c.handle(ev.Tick())


def capacity_summary(c: CellController) -> CapacitySummary:
    s = summarize(c.host_views())
    live = [i for i in c.core.all_instances() if i.record.state is not lc.State.DELETED]
    # As a reader should see them: an instance on a silent host counts as UNKNOWN, not as its last state.
    by_status = Counter(c.observed(i).status.value for i in live)
    return CapacitySummary(
        cell_id=c.settings.cell_id,
        vcpus_total=s.capacity.vcpus,
        vcpus_free=s.free.vcpus,
        mem_mb_total=s.capacity.memory_mb,
        mem_mb_free=s.free.memory_mb,
        disk_gb_total=s.capacity.disk_gb,
        disk_gb_free=s.free.disk_gb,
        instances=len(live),
        hosts_up=s.hosts_up,
        updated_at_ms=c.now_ms(),
        instances_by_status=dict(by_status),
        networks=network_room(c),
        default_network=next((n.name for n in c.settings.networks if n.default), ""),
    )


def network_room(c: CellController) -> dict[str, int]:
    """Per network, the addresses a build could get now; a network without an IPv4 pool never runs out."""
    free = c.core.free_addresses(c.now_ms())
    return {n.name: free.get(n.name, UNLIMITED_ADDRESSES) for n in c.settings.networks}


async def publish_capacity(c: CellController, publisher: Publisher) -> None:
    await publisher.publish_capacity(capacity_summary(c))


async def refresh_gauges(c: CellController) -> None:
    m, cell, now = c.metrics, c.settings.cell_id, c.now_ms()
    counts = Counter(c.observed(i).status.value for i in c.core.all_instances())
    for state in lc.State:
        m.instances.labels(cell, state.value).set(counts.get(state.value, 0))
    s = summarize(c.host_views())
    for kind, value in (("total", s.capacity), ("used", s.used), ("free", s.free)):
        m.vcpus.labels(cell, kind).set(value.vcpus)
        m.memory.labels(cell, kind).set(value.memory_mb * 1024 * 1024)
        m.disk.labels(cell, kind).set(value.disk_gb * 1024**3)
    m.hosts_up.labels(cell).set(s.hosts_up)
    for network, free in c.core.free_addresses(now).items():
        m.addresses_free.labels(cell, network).set(free)
    for host in c.core.hosts.all():
        if host.last_seen_ms is not None:
            m.heartbeat_age.labels(cell, host.host_id).set(max(0, now - host.last_seen_ms) / 1000)


async def republish_recent(c: CellController, publisher: Publisher) -> None:
    """Anti-entropy for recent changes: the rows of instances changed within the window, deletes included
    (the full sweep, cell.reassert, walks live instances only). A replica that missed one (a cut shorter
    than Cassandra's failure detection leaves hints that 2.1 replays only on a 10-minute timer) converges
    within `recent_every_s`. Idempotent: same rows, same timestamps; the publisher coalesces."""
    for inst in c.core.recently_changed(c.now_ms(), c.settings.recent_window_ms):
        publisher.instance_changed(inst)
