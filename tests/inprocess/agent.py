"""A compute agent without libvirt: it speaks the Agent API (proto/cellfed/v1/agent.proto) to a real cell
controller over one stream, as cell.compute.agent does (hello with resources and the domains it runs,
heartbeats with observed domains, reboots applied and failures), and keeps its domains in a dict.

Like the real agent it has one path for change: each desired set it receives is converged on at once
(a domain for every RUNNING or SHUTOFF entry, none for NO_DOMAIN, a reboot per new generation; domains
the set does not name are left alone, as the real agent's orphan grace would), then reported at once.
How it converges is the test's choice (`mode`):
- "ok": do it and report the outcome;
- "fail": change nothing and report a libvirt-like failure for every entry it could not reach;
- "hang": keep the set and never act nor answer (a wedged libvirt call);
- "silent": the stream stays open but nothing is answered and no heartbeat is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Literal

import grpc
from cellfed.v1 import agent_pb2, agent_pb2_grpc

from fedlib.pki.identity import Role
from fedrpc.channel import open_channel
from fedrpc.tls import ClientTls

Mode = Literal["ok", "fail", "hang", "silent"]


@dataclass(frozen=True)
class HostSpec:
    host_id: str
    vcpus: int = 8
    memory_mb: int = 16_384
    disk_gb: int = 200
    cpu_allocation_ratio: float = 1.0  # 1.0, not the agent's 4.0: the sizes in a test are what fits


class FakeAgent:
    def __init__(self, spec: HostSpec, cell_id: str, controller: str) -> None:
        self.spec, self.cell_id, self.controller = spec, cell_id, controller
        self.mode: Mode = "ok"
        self.domains: dict[str, agent_pb2.ObservedDomain] = {}
        self.desired: agent_pb2.DesiredState | None = None
        self.rebooted: dict[str, int] = {}  # instance id -> newest reboot generation applied
        self.failures: list[agent_pb2.ReconcileFailure] = []
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self._reader: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()  # grpc.aio allows one writer at a time
        self.tls: ClientTls | None = None  # set by the harness under mTLS: the agent's own certificate

    @property
    def host_id(self) -> str:
        return self.spec.host_id

    async def connect(self) -> None:
        secure = self.tls and self.tls.target(self.tls.site, Role.CELL)
        self._channel = open_channel(self.controller, secure)
        self._call = agent_pb2_grpc.AgentServiceStub(self._channel).Connect()
        s = self.spec
        hello = agent_pb2.AgentHello(
            host=s.host_id, libvirt_uri="fake:///", agent_version="fake",
            resources=agent_pb2.HostResources(
                vcpus=s.vcpus, memory_mb=s.memory_mb, disk_gb=s.disk_gb,
                cpu_allocation_ratio=s.cpu_allocation_ratio, memory_allocation_ratio=1.0,
            ),
            domains=list(self.domains.values()),
        )  # fmt: skip
        await self._write(agent_pb2.AgentMessage(hello=hello))
        self._reader = asyncio.create_task(self._read(self._call))

    async def heartbeat(self) -> None:
        """One heartbeat with what runs here now (the real agent sends one a second)."""
        if self.mode == "silent" or self._call is None:
            return
        beat = agent_pb2.AgentHeartbeat(domains=list(self.domains.values()), failures=self.failures)
        for d in beat.domains:
            d.reboot_generation = self.rebooted.get(d.instance_id, 0)
        beat.sent_at.GetCurrentTime()
        await self._write(agent_pb2.AgentMessage(heartbeat=beat))

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._call is not None:
            self._call.cancel()
        if self._channel is not None:
            await self._channel.close()
        self._call = self._channel = self._reader = None

    async def _write(self, message: agent_pb2.AgentMessage) -> None:
        assert self._call is not None, "not connected"
        async with self._write_lock:
            await self._call.write(message)

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                if message.WhichOneof("body") == "desired":
                    self.desired = message.desired
                    if self.mode not in ("hang", "silent"):
                        self._converge(message.desired)
                        await self.heartbeat()

    def _converge(self, desired: agent_pb2.DesiredState) -> None:
        self.failures = []
        for want in desired.domains:
            iid, have = want.spec.instance_id, self.domains.get(want.spec.instance_id)
            reached = (have is None and want.power == agent_pb2.NO_DOMAIN) or (
                have is not None and have.power == want.power
            )
            pending_reboot = want.reboot_generation > self.rebooted.get(iid, 0)
            if reached and not pending_reboot:
                continue
            if self.mode == "fail":
                self.failures.append(
                    agent_pb2.ReconcileFailure(
                        instance_id=iid, wanted=want.power, reboot_generation=want.reboot_generation,
                        failed_call="fakeCall", error="fake: libvirt refused",
                    )
                )  # fmt: skip
                continue
            if want.power == agent_pb2.NO_DOMAIN:
                self.domains.pop(iid, None)
                continue
            s = want.spec
            self.domains[iid] = agent_pb2.ObservedDomain(
                instance_id=iid, tenant=s.tenant, flavor=s.flavor.name, spec_version=s.spec_version,
                power=want.power,
            )  # fmt: skip
            if want.reboot_generation:
                self.rebooted[iid] = want.reboot_generation
