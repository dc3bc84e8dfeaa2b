"""The compute agent: one per host. Dials its cell controller and keeps one long-lived stream for
registration, heartbeats, domain events and desired state; drives libvirt through the
Hypervisor interface (cell.compute.libvirt_host, run in threads: libvirt calls block).

The host is the canonical store of what it runs (domain metadata), so a restarted agent recovers from
libvirt alone. There is one path for change, level-triggered (cell.compute.reconcile): every desired set
the controller pushes (on connect, on every change it decides, and periodically) triggers a reconcile
pass at once, whose outcome goes back at once as a heartbeat; a periodic pass catches drift in between.
Whatever was lost, the host converges on the controller's desired state.

The agent holds a lease on its host (cell.compute.lease), granted per connection and renewed by its
heartbeats. It acts on a desired set only while it holds the lease under which that set arrived; when
the lease ends (cut off, frozen, refused) it fences: powers its guests off and waits for a new lease.
Under a new lease the first heartbeat (its ready report) goes out only after the first reconcile pass,
which destroys stale copies (an older generation of an instance that was evacuated while it was gone)
before anything else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
from cellfed.v1 import agent_pb2, agent_pb2_grpc

from cell.compute import actions
from cell.compute.domains import HostLayout, desired_instance
from cell.compute.hypervisor import Hypervisor, LibvirtCallError, LifecycleEvent
from cell.compute.lease import AgentLease, to_fence
from cell.compute.metrics import AgentMetrics
from cell.compute.observe import event_power, observed_domains, report_domains
from cell.compute.reconcile import DesiredInstance, DesiredState, OrphanPolicy, reconcile
from fedlib.pki.identity import Role
from fedrpc.channel import open_channel
from fedrpc.clock import monotonic_ms
from fedrpc.tls import ClientTls

log = logging.getLogger(__name__)

REISSUE_CHECK_S = 1.0  # how often a session under mTLS looks for a re-issued certificate
# What the session writes to its controller; None ends the stream cleanly (the writer half-closes it).
Outbound = asyncio.Queue[agent_pb2.AgentMessage | None]


@dataclass(frozen=True)
class AgentSettings:
    host_id: str
    cell_id: str
    controller: str  # host:port of the cell controller's Agent API
    libvirt_uri: str = "test:///default"
    vcpus: int = 0  # 0: what libvirt reports; the test driver's numbers are fake, so tests set these
    memory_mb: int = 0
    disk_gb: int = 100
    cpu_allocation_ratio: float = 4.0
    memory_allocation_ratio: float = 1.0
    heartbeat_s: float = 1.0
    reconcile_s: float = 5.0
    orphan_grace_s: float = 600.0
    max_parallel: int = 8
    # Until the controller's first grant says otherwise: the lease an agent allows itself after start.
    lease_s: float = 30.0
    fence_s: float = 15.0
    fence_check_s: float = 0.2  # how often the watchdog looks at the lease


class ComputeAgent:
    def __init__(
        self,
        settings: AgentSettings,
        hypervisor: Hypervisor,
        layout: HostLayout,
        metrics: AgentMetrics,
        clock_ms: Callable[[], int] = monotonic_ms,
        tls: ClientTls | None = None,
    ) -> None:
        """With `tls` (the agent's certificate) the agent dials its controller with mTLS and accepts only
        the cell certificate of its own site."""
        self.settings, self.metrics, self._now = settings, metrics, clock_ms
        self._tls = tls
        self.executor = actions.Executor(hypervisor, layout, metrics, settings.host_id, settings.max_parallel)
        self._hv = hypervisor
        self._desired: agent_pb2.DesiredState | None = None
        self._desired_as_of = 0
        self._first_seen: dict[str, int] = {}
        self._reconcile_lock = asyncio.Lock()
        self._events: asyncio.Queue[LifecycleEvent] = asyncio.Queue(4096)
        self.connected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.lease = AgentLease.at_start(
            clock_ms(), int(settings.lease_s * 1000), int(settings.fence_s * 1000)
        )
        self._desired_generation = 0  # the lease generation the desired set arrived under
        self._ready = asyncio.Event()  # set after the first reconcile pass under the current lease

    async def run(self) -> None:
        """Serves forever: reconnects with backoff; running domains are never touched on disconnect."""
        loop = asyncio.get_running_loop()
        handle = self._hv.subscribe(lambda ev: loop.call_soon_threadsafe(self._queue_event, ev))
        reconciler = asyncio.create_task(self._reconcile_forever())
        watchdog = asyncio.create_task(self._watch_lease())
        backoff = 0.2
        try:
            while True:
                try:
                    await self._session()
                    backoff = 0.2
                except grpc.aio.AioRpcError as exc:
                    log.warning("controller stream ended: %s", exc.details())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # whatever broke the stream, the agent reconnects; it never dies
                    log.warning("controller stream failed: %r", exc)
                finally:
                    if self.connected.is_set():  # the session was up: this is a new outage, dial soon
                        backoff = 0.2
                    self.connected.clear()
                    self.metrics.connected.labels(self.settings.host_id).set(0)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        finally:
            reconciler.cancel()
            watchdog.cancel()
            self._hv.unsubscribe(handle)

    def _queue_event(self, event: LifecycleEvent) -> None:
        if not self._events.full():
            self._events.put_nowait(event)

    async def _session(self) -> None:
        # A channel per session: a reconnect after a rotation presents the newest certificate.
        secure = None if self._tls is None else self._tls.target(self._tls.site, Role.CELL)
        async with open_channel(self.settings.controller, secure) as channel:
            call = agent_pb2_grpc.AgentServiceStub(channel).Connect()
            outbound: Outbound = asyncio.Queue(4096)
            hello = await self._hello()
            self._ready.clear()
            self.lease.hello_sent(self._now())
            await call.write(agent_pb2.AgentMessage(hello=hello))
            self.connected.set()
            self.metrics.connected.labels(self.settings.host_id).set(1)
            self.metrics.sessions.labels(self.settings.host_id).inc()
            log.info("connected to controller %s", self.settings.controller)
            tasks = [
                asyncio.create_task(self._writer(call, outbound)),
                asyncio.create_task(self._heartbeats(outbound)),
                asyncio.create_task(self._forward_events(outbound)),
            ]
            if secure is not None:
                tasks.append(asyncio.create_task(self._end_when_reissued(secure.generation, outbound)))
            try:
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        return
                    if not await self._handle(message, outbound):
                        return  # the lease was refused: a new connection gets a new one
            finally:
                for task in tasks:
                    task.cancel()
                with contextlib.suppress(Exception):
                    call.cancel()

    async def _hello(self) -> agent_pb2.AgentHello:
        capacity = await asyncio.to_thread(self._hv.capacity)
        s = self.settings
        resources = agent_pb2.HostResources(
            vcpus=s.vcpus or capacity.cpus,
            memory_mb=s.memory_mb or capacity.memory_mib,
            disk_gb=s.disk_gb,
            cpu_allocation_ratio=s.cpu_allocation_ratio,
            memory_allocation_ratio=s.memory_allocation_ratio,
        )
        domains = await asyncio.to_thread(self._hv.list_domains)
        return agent_pb2.AgentHello(
            host=s.host_id, libvirt_uri=s.libvirt_uri, resources=resources,
            domains=report_domains(domains, s.cell_id), agent_version="1",
        )  # fmt: skip

    async def _writer(self, call: grpc.aio.StreamStreamCall, outbound: Outbound) -> None:
        while True:  # grpc.aio allows one writer at a time: every message goes through this task
            message = await outbound.get()
            if message is None:
                await call.done_writing()  # the controller ends the stream; the next one is dialed
                return
            await call.write(message)

    async def _end_when_reissued(self, generation: int, outbound: Outbound) -> None:
        """Under mTLS: once this host's certificate is re-issued, end the session cleanly, so the next one
        presents the new certificate (an established TLS session would otherwise outlive the old one)."""
        assert self._tls is not None
        while True:
            if self._tls.generation() != generation:
                log.info("certificate re-issued: reconnecting to present it")
                await outbound.put(None)
                return
            await asyncio.sleep(REISSUE_CHECK_S)

    async def _heartbeats(self, outbound: Outbound) -> None:
        # The first report under a lease waits for the pass that removed stale copies (bounded by the
        # lease itself: the agent fences if that pass cannot finish in time, and reconnects).
        await self._ready.wait()
        log.info(
            "lease %d: ready, first report after the pass that removed stale copies", self.lease.generation
        )
        while True:
            await outbound.put(agent_pb2.AgentMessage(heartbeat=await self._heartbeat()))
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _heartbeat(self) -> agent_pb2.AgentHeartbeat:
        """The whole picture: what runs, the reboots applied, and what could not be done."""
        domains = await asyncio.to_thread(self._hv.list_domains)
        beat = agent_pb2.AgentHeartbeat(domains=report_domains(domains, self.settings.cell_id))
        for d in beat.domains:
            d.reboot_generation = self.executor.rebooted.get(d.instance_id, 0)
        beat.failures.extend(self.executor.failures(self._wanted()))
        beat.sent_at.GetCurrentTime()
        beat.lease_generation = self.lease.generation
        beat.seq = self.lease.next_heartbeat(self._now())  # the lease is timed from this moment
        self.metrics.domains.clear()
        for d in beat.domains:
            self.metrics.domains.labels(self.settings.host_id, agent_pb2.PowerState.Name(d.power)).inc()
        return beat

    def _wanted(self) -> dict[str, DesiredInstance]:
        desired = self._desired
        return {} if desired is None else {d.spec.instance_id: desired_instance(d) for d in desired.domains}

    async def _forward_events(self, outbound: Outbound) -> None:
        while True:
            event = await self._events.get()
            message = event_power(event)
            if message is not None:
                await outbound.put(agent_pb2.AgentMessage(domain_event=message))

    async def _handle(self, message: agent_pb2.ControllerMessage, outbound: Outbound) -> bool:
        """Takes one controller message; False when the stream must end (the lease was refused)."""
        kind = message.WhichOneof("body")
        if kind == "lease":
            g = message.lease
            self.lease.granted(g.generation, g.seq, g.lease_ms, g.fence_ms)
            self.metrics.lease_held.labels(self.settings.host_id).set(int(self.lease.holds(self._now())))
        elif kind == "lease_lost":
            log.warning("controller refused the lease (%s): fencing", message.lease_lost.reason)
            self.lease.lost()
            await self.fence()
            return False
        elif kind == "desired":
            if not self.lease.holds(self._now()):
                return True  # not under a lease: not ours to act on (a new lease brings a new set)
            self._desired, self._desired_as_of = message.desired, self._now()
            self._desired_generation = self.lease.generation
            ready = self._ready.is_set()

            async def reconcile_and_report() -> None:
                try:
                    await self.reconcile_once()
                finally:
                    self._ready.set()
                if ready:  # the first report is the heartbeat loop's, now released
                    await outbound.put(agent_pb2.AgentMessage(heartbeat=await self._heartbeat()))

            self._background(reconcile_and_report())
        return True

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Keeps a reference until done: the loop holds tasks only weakly."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_s)
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("reconcile pass failed")

    async def _watch_lease(self) -> None:
        """Fences on the agent's own clock, whatever the stream does (it may be stuck, or the process
        was frozen: the first check after waking finds the lease over)."""
        while True:
            await self.check_lease()
            await asyncio.sleep(self.settings.fence_check_s)

    async def check_lease(self) -> None:
        if self.lease.must_fence(self._now()):
            await self.fence()

    async def fence(self) -> None:
        """The lease ended: power off every guest of this cell (they stay defined) and forget the desired
        set, so nothing starts again until a new lease brings a new one."""
        async with self._reconcile_lock:
            if self.lease.fenced:
                return
            self._desired, self._desired_generation = None, 0
            self.metrics.lease_held.labels(self.settings.host_id).set(0)
            domains = await asyncio.to_thread(self._hv.list_domains)
            observed = [
                (d.name, o.instance_id, o.cell, o.power)
                for d, o in zip(domains, observed_domains(domains), strict=True)
            ]
            targets = to_fence(observed, self.settings.cell_id)
            log.warning("host lease over: fencing %d guests (deadline in %d ms)", len(targets),
                        self.lease.fence_deadline_ms() - self._now())  # fmt: skip
            await asyncio.gather(*(self._power_off(t.name) for t in targets))
            self.lease.fenced = True
            self.metrics.fences.labels(self.settings.host_id).inc()

    async def _power_off(self, name: str) -> None:
        try:
            await asyncio.to_thread(self._hv.destroy, name)
        except LibvirtCallError as exc:  # gone already is fine; anything else is logged, the rest go on
            if not exc.no_domain:
                log.error("fencing could not power off %s: %s", name, exc.message)

    async def reconcile_once(self) -> None:
        """One level-triggered pass, only under the lease the desired set came with. Without a desired
        set from the controller nothing is touched."""
        await self.check_lease()
        if self._desired is None or not self.lease.holds(self._now()):
            return
        async with self._reconcile_lock:
            desired = self._desired
            if desired is None or self._desired_generation != self.lease.generation:
                return
            specs = {d.spec.instance_id: d.spec for d in desired.domains}
            wanted = {d.spec.instance_id: desired_instance(d) for d in desired.domains}
            superseded = {s.instance_id: s.generation for s in desired.superseded}
            state = DesiredState(
                tuple(wanted.values()), self._desired_as_of, self.settings.cell_id, superseded
            )
            observed = observed_domains(await asyncio.to_thread(self._hv.list_domains))
            policy = OrphanPolicy(grace_ms=int(self.settings.orphan_grace_s * 1000))
            plan = reconcile(state, observed, self._first_seen, self._now(), policy, self.executor.rebooted)
            self._first_seen = dict(plan.orphans_first_seen)
            await self.executor.apply_plan(plan, wanted, specs)
