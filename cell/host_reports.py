"""What compute agents tell the controller (hello, heartbeats with failures, domain events), decoded
into cell core events. Edge code: no decisions here. Reports describe the past: a stale one is ignored by
the state machine, so replays and reordering are harmless. Implements cell.agent_hub.HostListener."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from cellfed.v1 import agent_pb2

from cell import events as ev
from cell import lifecycle as lc
from cell.controller import CellController
from cell.hosts import HostState

log = logging.getLogger(__name__)

_POWER = {
    agent_pb2.RUNNING: lc.PowerState.RUNNING,
    agent_pb2.SHUTOFF: lc.PowerState.SHUTOFF,
    agent_pb2.PAUSED: lc.PowerState.PAUSED,
    agent_pb2.CRASHED: lc.PowerState.CRASHED,
    agent_pb2.NO_DOMAIN: lc.PowerState.NO_DOMAIN,
}


class HostReports:
    def __init__(self, controller: CellController) -> None:
        self._c = controller

    async def host_connected(self, host: str, hello: agent_pb2.AgentHello) -> None:
        r = hello.resources
        state = HostState(host, hello.libvirt_uri, r.vcpus, r.memory_mb, r.disk_gb,
                          r.cpu_allocation_ratio or 4.0, r.memory_allocation_ratio or 1.0)  # fmt: skip
        log.info(
            "host %s connected (%d vCPUs, %d MB, %d domains)", host, r.vcpus, r.memory_mb, len(hello.domains)
        )
        await self._c.handle(ev.HostConnected(state, _powers(hello.domains)))

    async def host_heartbeat(self, host: str, heartbeat: agent_pb2.AgentHeartbeat) -> None:
        failures = {
            f.instance_id: ev.Failure(_POWER.get(f.wanted, lc.PowerState.NO_DOMAIN), f.reboot_generation,
                                      f.failed_call, f.error)
            for f in heartbeat.failures
        }  # fmt: skip
        await self._handle(
            ev.HostHeartbeat(
                host, _powers(heartbeat.domains), failures, heartbeat.lease_generation, heartbeat.seq
            )
        )

    async def domain_event(self, host: str, event: agent_pb2.DomainEvent) -> None:
        power = _POWER.get(event.power)
        if power is not None:
            await self._handle(ev.DomainReported(host, event.instance_id, power, event.detail))

    async def host_disconnected(self, host: str) -> None:
        await self._handle(ev.HostDisconnected(host))
        log.warning("host %s disconnected", host)

    async def _handle(self, event: ev.Event) -> None:
        try:
            await self._c.handle(event)
        except Exception:  # one bad report must not end the host's stream; the next report redoes it
            log.exception("applying %s failed", type(event).__name__)


def _powers(domains: Iterable[agent_pb2.ObservedDomain]) -> dict[str, ev.Observed]:
    return {
        d.instance_id: ev.Observed(
            _POWER.get(d.power, lc.PowerState.NO_DOMAIN), d.reboot_generation, d.generation
        )
        for d in domains
    }
