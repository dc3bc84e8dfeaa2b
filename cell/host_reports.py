"""What compute agents tell the controller (hello, heartbeats, domain events, command results), turned
into lifecycle events. Reports describe the past: a stale one is ignored by the state machine, so replays
and reordering are harmless. Implements cell.agent_hub.HostListener."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from cellfed.v1 import agent_pb2

from cell import lifecycle as lc
from cell.controller import CellController
from cell.hosts import HostState
from replication.cell_records import HostRow

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
        c, r = self._c, hello.resources
        now = c.now_ms()
        state = c.register_host(
            HostState(host, hello.libvirt_uri, r.vcpus, r.memory_mb, r.disk_gb,
                      r.cpu_allocation_ratio or 4.0, r.memory_allocation_ratio or 1.0)
        )  # fmt: skip
        c.hosts.seen(host, now)
        await c.records.put_host(
            HostRow(host, state.vcpus, state.memory_mb, state.disk_gb, state.cpu_allocation_ratio,
                    state.memory_allocation_ratio, state.libvirt_uri, state.disabled, now)
        )  # fmt: skip
        log.info(
            "host %s connected (%d vCPUs, %d MB, %d domains)", host, r.vcpus, r.memory_mb, len(hello.domains)
        )
        await self._observe(host, hello.domains)
        c.agents.desired_state(host, c.all_instances(), now)

    async def host_heartbeat(self, host: str, heartbeat: agent_pb2.AgentHeartbeat) -> None:
        self._c.hosts.seen(host, self._c.now_ms())
        await self._observe(host, heartbeat.domains)

    async def domain_event(self, host: str, event: agent_pb2.DomainEvent) -> None:
        self._c.hosts.seen(host, self._c.now_ms())
        power = _POWER.get(event.power)
        if power is not None:
            await self._report(event.instance_id, host, lc.HostReported(power), f"host event: {event.detail}")

    async def command_result(self, host: str, result: agent_pb2.CommandResult) -> None:
        c = self._c
        c.hosts.seen(host, c.now_ms())
        pending = c.agents.pending.pop(result.command_id, None)
        if pending is None:
            return
        instance_id, command = pending
        if not result.ok:
            c.metrics.agent_errors.labels(c.settings.cell_id, result.failed_call or "unknown").inc()
        event = _event_for(command, result)
        if event is not None:
            reason = "host reported success" if result.ok else f"host reported failure: {result.error}"
            await self._report(instance_id, host, event, reason)

    async def host_disconnected(self, host: str) -> None:
        self._c.hosts.disconnected(host)
        log.warning("host %s disconnected", host)

    async def _observe(self, host: str, domains: Iterable[agent_pb2.ObservedDomain]) -> None:
        """Level-triggered: every instance placed on this host is compared with what the host runs."""
        seen = {d.instance_id: _POWER.get(d.power, lc.PowerState.NO_DOMAIN) for d in domains}
        for inst in self._c.all_instances():
            if inst.record.host_id != host or inst.record.state is lc.State.DELETED:
                continue
            power = seen.get(inst.spec.instance_id, lc.PowerState.NO_DOMAIN)
            await self._report(
                inst.spec.instance_id, host, lc.HostReported(power), f"host reports {power.value}"
            )

    async def _report(self, instance_id: str, host: str, event: lc.Event, reason: str) -> None:
        c = self._c
        async with c.lock:
            inst = c.all_by_id().get(instance_id)
            if inst is None or inst.record.host_id != host:
                return  # not ours on this host: the agent's orphan policy deals with it
            try:
                await c.apply_locked(inst, event, reason)
            except Exception:  # one bad report must not stop the others
                log.exception("applying %s to %s failed", event.kind, instance_id)


def _event_for(command: lc.AgentCommand, result: agent_pb2.CommandResult) -> lc.Event | None:
    fault = lc.Fault(f"{command.value}_FAILED", result.error or "the host reported a failure")
    if command is lc.AgentCommand.BUILD:
        return lc.BuildSucceeded() if result.ok else lc.BuildFailed(fault)
    if command is lc.AgentCommand.REBOOT:
        return lc.RebootDone() if result.ok else lc.CommandFailed(fault)
    if command is lc.AgentCommand.DELETE:
        return lc.DeleteDone() if result.ok else lc.CommandFailed(fault)
    return None  # start/stop: the state already says what is wanted; the desired-state loop converges
