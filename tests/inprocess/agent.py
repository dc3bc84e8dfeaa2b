"""A compute agent without libvirt: it speaks the Agent API (proto/cellfed/v1/agent.proto) to a real cell
controller over one stream, as cell.compute.agent does (hello with resources and the domains it runs,
heartbeats with observed domains, command results), and keeps its domains in a dict.

What it does with a command is the test's choice (`mode`):
- "ok": do it at once and report success (a spawn leaves a RUNNING domain);
- "fail": report failure with a libvirt-like error, changing nothing;
- "hang": accept it and never answer (a wedged libvirt call);
- "silent": the stream stays open but nothing is answered and no heartbeat is sent.
Desired state is kept (`desired`) but not acted on: these tests are about the request path, and the
real agent reconciles only after an orphan grace anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Literal

import grpc
from cellfed.v1 import agent_pb2, agent_pb2_grpc

from fedrpc.channel import open_channel

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
        self.unanswered: list[agent_pb2.AgentCommand] = []  # what "hang" swallowed
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self._reader: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()  # grpc.aio allows one writer at a time

    @property
    def host_id(self) -> str:
        return self.spec.host_id

    async def connect(self) -> None:
        self._channel = open_channel(self.controller)
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
        beat = agent_pb2.AgentHeartbeat(domains=list(self.domains.values()))
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
                elif self.mode != "silent":
                    await self._command(message.command)

    async def _command(self, command: agent_pb2.AgentCommand) -> None:
        if self.mode == "hang":
            self.unanswered.append(command)
            return
        action = command.WhichOneof("action")
        iid = command.spawn.instance_id if action == "spawn" else str(getattr(command, action or ""))
        result = agent_pb2.CommandResult(command_id=command.command_id, instance_id=iid, ok=True)
        if self.mode == "fail":
            result.ok, result.error, result.failed_call = False, f"fake: {action} failed", "fakeCall"
        else:
            result.power = self._apply(command, action, iid)
        await self._write(agent_pb2.AgentMessage(command_result=result))

    def _apply(
        self, command: agent_pb2.AgentCommand, action: str | None, iid: str
    ) -> agent_pb2.PowerState.ValueType:
        if action == "spawn":
            s = command.spawn
            self.domains[iid] = agent_pb2.ObservedDomain(
                instance_id=iid, tenant=s.tenant, flavor=s.flavor.name, spec_version=s.spec_version,
                power=agent_pb2.RUNNING,
            )  # fmt: skip
        elif action == "destroy_instance_id":
            self.domains.pop(iid, None)
            return agent_pb2.NO_DOMAIN
        elif iid in self.domains:
            power = agent_pb2.SHUTOFF if action == "stop_instance_id" else agent_pb2.RUNNING
            self.domains[iid].power = power
        domain = self.domains.get(iid)
        return domain.power if domain is not None else agent_pb2.NO_DOMAIN
