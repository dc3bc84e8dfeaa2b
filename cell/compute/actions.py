"""Carries out reconcile plans against the hypervisor: the agent's one path for changing a host. Every
libvirt call runs in a thread; calls for one instance are serialised (two passes never interleave on one
instance), different instances run in parallel up to a bound.

What the executor remembers between passes is what the pure plan needs and libvirt does not keep: the
reboot generations it applied, and the latest failure per instance (with the desired state it failed
at), which the agent reports until a later attempt succeeds or the instance is no longer wanted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cellfed.v1 import agent_pb2

from cell.compute import reconcile as rc
from cell.compute.domain_xml import build_domain_xml, domain_name
from cell.compute.domains import HostLayout, materialize
from cell.compute.hypervisor import DomainState, Hypervisor, LibvirtCallError
from cell.compute.metrics import AgentMetrics
from fedlib.errors import CellfedError

log = logging.getLogger(__name__)

_STOP_TIMEOUT_S = 30.0
_WIRE_WANTED = {
    rc.DesiredPower.RUNNING: agent_pb2.RUNNING,
    rc.DesiredPower.STOPPED: agent_pb2.SHUTOFF,
    rc.DesiredPower.ABSENT: agent_pb2.NO_DOMAIN,
}


@dataclass(frozen=True)
class Failure:
    wanted: rc.DesiredPower
    reboot_generation: int
    call: str
    error: str


class Executor:
    def __init__(
        self, hv: Hypervisor, layout: HostLayout, metrics: AgentMetrics, host: str, parallel: int
    ) -> None:
        self._hv, self._layout, self._metrics, self._host = hv, layout, metrics, host
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(parallel)
        self.rebooted: dict[str, int] = {}  # instance id -> newest reboot generation applied
        self._failures: dict[str, Failure] = {}

    def _lock(self, instance_id: str) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    async def apply_plan(
        self,
        plan: rc.Plan,
        wanted: Mapping[str, rc.DesiredInstance],
        specs: Mapping[str, agent_pb2.SpawnDomain],
    ) -> None:
        await asyncio.gather(*(self._apply(a, wanted, specs) for a in plan.actions))
        for iid in set(self._failures) - set(wanted):  # no longer wanted: nothing left to fail at
            del self._failures[iid]
        for iid in set(self.rebooted) - set(wanted):
            del self.rebooted[iid]

    def failures(self, wanted: Mapping[str, rc.DesiredInstance]) -> list[agent_pb2.ReconcileFailure]:
        """Failures still about what is wanted now: a failure of an older ask is not reported."""
        out = []
        for iid, f in sorted(self._failures.items()):
            want = wanted.get(iid)
            if want is not None and (want.power, want.reboot_generation) == (f.wanted, f.reboot_generation):
                out.append(
                    agent_pb2.ReconcileFailure(
                        instance_id=iid, wanted=_WIRE_WANTED[f.wanted],
                        reboot_generation=f.reboot_generation, failed_call=f.call, error=f.error,
                    )
                )  # fmt: skip
        return out

    async def _apply(
        self,
        action: rc.Action,
        wanted: Mapping[str, rc.DesiredInstance],
        specs: Mapping[str, agent_pb2.SpawnDomain],
    ) -> None:
        if isinstance(action, rc.ReportDrift):
            self._metrics.drift.labels(self._host, action.kind.value).inc()
            log.warning("drift %s on %s: %s", action.kind.value, action.instance_id, action.detail)
            return
        iid = (
            action.instance.instance_id
            if isinstance(action, rc.DefineAndStart | rc.Define)
            else action.instance_id
        )
        kind = type(action).__name__
        started = time.monotonic()
        try:
            async with self._lock(iid), self._slots:
                await asyncio.to_thread(self._apply_sync, action, specs)
            self._failures.pop(iid, None)
        except (LibvirtCallError, CellfedError) as exc:
            # A spec the domain builder refused is a build fault like a libvirt refusal, not a crash.
            call = exc.call if isinstance(exc, LibvirtCallError) else "domain_spec"
            if isinstance(exc, LibvirtCallError):
                self._metrics.libvirt_errors.labels(self._host, call).inc()
            log.warning("reconcile %s of %s failed: %s", kind, iid, exc.message)
            want = wanted.get(iid)
            if want is not None:
                self._failures[iid] = Failure(want.power, want.reboot_generation, call, exc.message)
        finally:
            self._metrics.action_seconds.labels(self._host, kind).observe(time.monotonic() - started)

    def _apply_sync(self, action: rc.Action, specs: Mapping[str, agent_pb2.SpawnDomain]) -> None:
        if isinstance(action, rc.DefineAndStart | rc.Define):
            spawn = specs.get(action.instance.instance_id)
            if spawn is not None:
                self._spawn(spawn, isinstance(action, rc.DefineAndStart))
                if action.instance.reboot_generation:  # a fresh boot satisfies any pending reboot
                    self.rebooted[spawn.instance_id] = action.instance.reboot_generation
        elif isinstance(action, rc.Start):
            self._start(action.instance_id)
            if action.reboot_generation:
                self.rebooted[action.instance_id] = action.reboot_generation
        elif isinstance(action, rc.Reboot):
            self._hv.reboot(domain_name(action.instance_id))
            self.rebooted[action.instance_id] = action.generation
        elif isinstance(action, rc.Stop):
            self._hv.shutdown(domain_name(action.instance_id), _STOP_TIMEOUT_S)
        elif isinstance(action, rc.Destroy | rc.Undefine):
            self._delete(action.instance_id)  # destroy + undefine together, idempotent

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
        if start and info.state not in (DomainState.RUNNING, DomainState.BLOCKED):
            self._hv.start(name)

    def _start(self, instance_id: str) -> None:
        info = self._hv.domain(domain_name(instance_id))
        if info.state not in (DomainState.RUNNING, DomainState.BLOCKED):
            self._hv.start(domain_name(instance_id))

    def _delete(self, instance_id: str) -> None:
        self._hv.delete(domain_name(instance_id))
        (self._layout.state_dir / "drives" / f"{instance_id}.iso").unlink(missing_ok=True)
