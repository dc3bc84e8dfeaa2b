"""Carries out controller commands and reconcile plans against the hypervisor. Every libvirt call runs in
a thread; calls for one instance are serialised (a spawn and a reconcile of the same instance never
interleave), different instances run in parallel up to a bound."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from cellfed.v1 import agent_pb2

from cell.compute import reconcile as rc
from cell.compute.domain_xml import build_domain_xml, domain_name
from cell.compute.domains import HostLayout, materialize
from cell.compute.hypervisor import Hypervisor, LibvirtCallError, PowerState
from cell.compute.metrics import AgentMetrics
from fedlib.errors import CellfedError

log = logging.getLogger(__name__)

_STOP_TIMEOUT_S = 30.0


class Executor:
    def __init__(
        self, hv: Hypervisor, layout: HostLayout, metrics: AgentMetrics, host: str, parallel: int
    ) -> None:
        self._hv, self._layout, self._metrics, self._host = hv, layout, metrics, host
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(parallel)

    def _lock(self, instance_id: str) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    async def command(self, command: agent_pb2.AgentCommand) -> agent_pb2.CommandResult:
        action = command.WhichOneof("action")
        iid = command.spawn.instance_id if action == "spawn" else getattr(command, action or "", "")
        result = agent_pb2.CommandResult(command_id=command.command_id, instance_id=iid, ok=True)
        started = time.monotonic()
        try:
            async with self._lock(iid), self._slots:
                if action == "spawn":
                    await asyncio.to_thread(self._spawn, command.spawn, True)
                elif action == "start_instance_id":
                    await asyncio.to_thread(self._start, iid)
                elif action == "stop_instance_id":
                    await asyncio.to_thread(self._hv.shutdown, domain_name(iid), _STOP_TIMEOUT_S)
                elif action == "reboot_instance_id":
                    await asyncio.to_thread(self._hv.reboot, domain_name(iid))
                elif action == "destroy_instance_id":
                    await asyncio.to_thread(self._delete, iid)
        except LibvirtCallError as exc:
            self._metrics.libvirt_errors.labels(self._host, exc.call).inc()
            result.ok, result.error, result.failed_call = False, exc.message, exc.call
        except CellfedError as exc:  # e.g. a spec the domain builder refused: a build fault, not a crash
            result.ok, result.error, result.failed_call = False, exc.message, "domain_spec"
        finally:
            self._metrics.command_seconds.labels(self._host, action or "none").observe(
                time.monotonic() - started
            )
        return result

    def _spawn(self, spawn: agent_pb2.SpawnDomain, start: bool) -> None:
        """Idempotent: an existing domain is started (if wanted), never defined twice."""
        name = domain_name(spawn.instance_id)
        try:
            info = self._hv.domain(name)
        except LibvirtCallError as exc:
            if not exc.no_domain:
                raise
            xml = build_domain_xml(materialize(spawn, self._layout))
            if start:
                self._hv.define_and_start(xml)
            else:
                self._hv.define(xml)
            return
        if start and info.state not in (PowerState.RUNNING, PowerState.BLOCKED):
            self._hv.start(name)

    def _start(self, instance_id: str) -> None:
        info = self._hv.domain(domain_name(instance_id))
        if info.state not in (PowerState.RUNNING, PowerState.BLOCKED):
            self._hv.start(domain_name(instance_id))

    def _delete(self, instance_id: str) -> None:
        self._hv.delete(domain_name(instance_id))
        (self._layout.state_dir / "drives" / f"{instance_id}.iso").unlink(missing_ok=True)

    async def apply_plan(self, plan: rc.Plan, specs: Mapping[str, agent_pb2.SpawnDomain]) -> None:
        await asyncio.gather(*(self._apply(a, specs) for a in plan.actions))

    async def _apply(self, action: rc.Action, specs: Mapping[str, agent_pb2.SpawnDomain]) -> None:
        if isinstance(action, rc.ReportDrift):
            self._metrics.drift.labels(self._host, action.kind.value).inc()
            log.warning("drift %s on %s: %s", action.kind.value, action.instance_id, action.detail)
            return
        iid = (
            action.instance.instance_id
            if isinstance(action, rc.DefineAndStart | rc.Define)
            else action.instance_id
        )
        try:
            async with self._lock(iid), self._slots:
                await asyncio.to_thread(self._apply_sync, action, specs)
        except LibvirtCallError as exc:
            self._metrics.libvirt_errors.labels(self._host, exc.call).inc()
            log.warning("reconcile %s of %s failed: %s", type(action).__name__, iid, exc.message)

    def _apply_sync(self, action: rc.Action, specs: Mapping[str, agent_pb2.SpawnDomain]) -> None:
        if isinstance(action, rc.DefineAndStart | rc.Define):
            spawn = specs.get(action.instance.instance_id)
            if spawn is not None:
                self._spawn(spawn, isinstance(action, rc.DefineAndStart))
        elif isinstance(action, rc.Start):
            self._start(action.instance_id)
        elif isinstance(action, rc.Stop):
            self._hv.shutdown(domain_name(action.instance_id), _STOP_TIMEOUT_S)
        elif isinstance(action, rc.Destroy | rc.Undefine):
            self._delete(action.instance_id)  # destroy + undefine together, idempotent
