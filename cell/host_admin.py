"""The Cell API's host operations for operators: list hosts with their leases, disable or enable one,
evacuate one. Edge code: validate, step the core through the controller, encode. The decisions (when
evacuation is allowed, where each instance goes) are the core's (cell.core, cell.leases)."""

from __future__ import annotations

import logging

from cellfed.v1 import cell_pb2, common_pb2

from cell import events as ev
from cell import lifecycle as lc
from cell.controller import CellController
from cell.hosts import HostState
from fedlib.errors import InvalidArgument

log = logging.getLogger(__name__)

_STATUS = {s.value: getattr(common_pb2, s.value) for s in lc.State}


def check_host(host: str) -> str:
    """Host ids are whatever agents were started with (often hostnames), so only what cannot be one is
    refused here; an unknown host is NOT_FOUND from the core."""
    if not host or len(host) > 253 or any(c.isspace() or c == "/" for c in host):
        raise InvalidArgument(f"host {host!r} must be 1-253 characters without '/' or spaces", field="host")
    return host


def host_detail(c: CellController, host: HostState) -> cell_pb2.HostDetail:
    now, leases = c.now_ms(), c.settings.leases
    status = cell_pb2.HostStatus(
        host=host.host_id, up=c.core.hosts.is_up(host.host_id, now), disabled=host.disabled,
        libvirt_uri=host.libvirt_uri,
        capacity=common_pb2.Capacity(vcpus_total=host.vcpus, memory_mb_total=host.memory_mb,
                                     disk_gb_total=host.disk_gb),
    )  # fmt: skip
    if host.last_seen_ms is not None:
        status.last_heartbeat.FromMilliseconds(host.last_seen_ms)
    live = [i for i in c.core.on_host(host.host_id) if i.record.state is not lc.State.DELETED]
    out = cell_pb2.HostDetail(
        status=status,
        lease_state=c.core.lease_state(host.host_id, now).value,
        lease_generation=host.lease_generation,
        instances=len(live),
    )
    out.observed_at.FromMilliseconds(now)
    if host.lease_renewed_ms is not None:
        out.lease_expires_at.FromMilliseconds(leases.expires_ms(host.lease_renewed_ms))
        out.evacuable_at.FromMilliseconds(leases.fenced_ms(host.lease_renewed_ms))
    return out


def list_hosts(c: CellController) -> cell_pb2.ListCellHostsResponse:
    out = cell_pb2.ListCellHostsResponse(hosts=[host_detail(c, h) for h in c.core.hosts.all()])
    out.observed_at.FromMilliseconds(c.now_ms())
    return out


async def set_disabled(c: CellController, request: cell_pb2.SetHostDisabledRequest) -> cell_pb2.HostDetail:
    ready = await c.handle(ev.HostDisabledSet(check_host(request.host), request.disabled))
    assert ready.host_result is not None  # set by the step, or it raised NotFound
    return host_detail(c, ready.host_result)


async def evacuate(
    c: CellController, request: cell_pb2.CellEvacuateHostRequest
) -> cell_pb2.CellEvacuateHostResponse:
    event = ev.EvacuationRequested(check_host(request.host), request.force, request.powered_off)
    ready = await c.handle(event)
    evacuation, host = ready.evacuation, ready.host_result
    assert evacuation is not None and host is not None  # set by the step, or it raised
    log.warning("host %s evacuated (force=%s): %d moved, %d stayed", host.host_id, request.force,
                len(evacuation.moved), len(evacuation.stayed))  # fmt: skip
    out = cell_pb2.CellEvacuateHostResponse(host=host_detail(c, host))
    for m in evacuation.moved:
        out.moved.add(instance_id=m.instance_id, to_host=m.to_host or "", generation=m.generation,
                      status=_STATUS[m.state.value])  # fmt: skip
    for iid, reason in evacuation.stayed:
        out.stayed.add(instance_id=iid, reason=reason)
    return out
