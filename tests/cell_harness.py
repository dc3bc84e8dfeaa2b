"""Runs a real cell for integration tests: `cellfed cell serve` and `cellfed agent serve` as separate
processes (so tests can SIGKILL, SIGSTOP and restart them) against the suite's real Cassandra, with the
libvirt test driver on each agent. The same commands operators run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cellfed.v1 import cell_pb2, cell_pb2_grpc

from localfed.processes import spawn as _spawn
from localfed.processes import stop_all
from localfed.processes import wait_ready as _wait_ready


@dataclass
class Agent:
    host_id: str
    proc: subprocess.Popen[bytes]
    metrics_port: int

    def domains(self) -> float:
        """How many cellfed domains the agent's own libvirt connection holds, from its /metrics."""
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        )
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith("cellfed_agent_domains{"))  # fmt: skip


@dataclass
class CellHarness:
    cell_id: str
    workdir: Path
    contact_points: list[str]
    local_dc: str
    global_keyspace: str
    port: int = 0
    controller: subprocess.Popen[bytes] | None = None
    agents: dict[str, Agent] = field(default_factory=dict)

    def start_controller(self, *, build_timeout_s: float = 60.0, extra: Sequence[str] = ()) -> None:
        listen = f"127.0.0.1:{self.port}"
        self.controller = _spawn(
            ["cell", "serve", "--cell-id", self.cell_id, "--site", "par1", "--region", self.local_dc,
             "--listen", listen, "--cassandra", ",".join(self.contact_points), "--local-dc", self.local_dc,
             "--global-keyspace", self.global_keyspace, "--host-grace-s", "2",
             "--build-timeout-s", str(build_timeout_s), *extra],
            self.workdir / "controller.log",
        )  # fmt: skip
        ready = _wait_ready(self.controller, "cell controller")
        self.port = int(ready["port"])

    def start_agent(
        self,
        host_id: str,
        *,
        vcpus: int = 8,
        memory_mb: int = 16384,
        disk_gb: int = 200,
        libvirt_uri: str = "test:///default",
        state_dir: Path | None = None,
        extra: Sequence[str] = (),
    ) -> Agent:
        proc = _spawn(
            ["agent", "serve", "--host-id", host_id, "--cell-id", self.cell_id,
             "--controller", f"127.0.0.1:{self.port}", "--state-dir",
             str(state_dir or self.workdir / host_id),
             "--libvirt-uri", libvirt_uri,
             "--vcpus", str(vcpus), "--memory-mb", str(memory_mb), "--disk-gb", str(disk_gb),
             "--reconcile-s", "1", "--orphan-grace-s", "5", *extra],
            self.workdir / f"agent-{host_id}.log",
        )  # fmt: skip
        ready = _wait_ready(proc, f"agent {host_id}")
        agent = Agent(host_id, proc, int(ready["metrics"]))
        self.agents[host_id] = agent
        return agent

    def signal_agent(self, host_id: str, sig: signal.Signals) -> None:
        os.killpg(self.agents[host_id].proc.pid, sig)
        if sig is signal.SIGKILL:
            self.agents[host_id].proc.wait(10)

    def kill_controller(self) -> None:
        assert self.controller is not None
        os.killpg(self.controller.pid, signal.SIGKILL)
        self.controller.wait(10)

    def stop(self) -> None:
        procs = [a.proc for a in self.agents.values()] + ([self.controller] if self.controller else [])
        stop_all(procs)

    def stub(self) -> tuple[grpc.aio.Channel, cell_pb2_grpc.CellServiceStub]:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        return channel, cell_pb2_grpc.CellServiceStub(channel)

    async def wait_hosts_up(self, count: int, timeout_s: float = 30.0) -> cell_pb2.CellStatus:
        channel, stub = self.stub()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    status = await stub.GetCellStatus(cell_pb2.GetCellStatusRequest(), timeout=2)
                    if sum(h.up for h in status.hosts) >= count:
                        return status
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{count} hosts not up within {timeout_s}s")
                await asyncio.sleep(0.2)
        finally:
            await channel.close()
