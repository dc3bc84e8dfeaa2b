"""A real compute agent (cell.compute.agent, on an in-memory hypervisor) on its cell's mTLS Agent API port
(tests.inprocess.harness, tls=True): when its certificate is re-issued it ends its session cleanly and
dials again with the new one; its host never leaves placement meanwhile (a half-close is not a crash)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cell.compute.agent import AgentSettings, ComputeAgent
from cell.compute.domains import HostLayout
from cell.compute.metrics import AgentMetrics
from fedlib.pki.identity import Role
from tests.inprocess.harness import SITES, Harness, cells
from tests.unit.cell.compute.test_agent_lease import FakeHypervisor

HOST = "par1-c1-real"


def _sessions(metrics: AgentMetrics) -> float:
    return metrics.sessions.labels(HOST)._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_an_agent_reconnects_with_its_reissued_certificate_and_its_host_stays_up(
    tmp_path: Path,
) -> None:
    async with Harness.running(SITES, cells(), routers=["par1"], tls=True) as h:
        assert h.pki is not None
        cell = h.cells["par1-c1"]
        assert cell.running is not None
        tls = h.pki.client("eu-west", "par1", Role.AGENT, HOST)
        settings = AgentSettings(HOST, "par1-c1", f"127.0.0.1:{cell.running.agent_port}")
        metrics = AgentMetrics(HOST)
        agent = ComputeAgent(settings, FakeHypervisor(), HostLayout(tmp_path, "test"), metrics, tls=tls)
        task = asyncio.create_task(agent.run())

        async def up() -> bool:
            return any(host.host == HOST and host.up for host in (await cell.status()).hosts)

        try:
            await h.until(up, f"{HOST} up", timeout_s=10)
            assert _sessions(metrics) == 1
            served = tls.generation()
            h.pki.rotate()  # every region CA, every leaf: this agent's too
            seen_down = []

            async def reconnected() -> bool:
                if not await up():  # sampled every few ms across the reconnect
                    seen_down.append(True)
                return _sessions(metrics) >= 2 and agent.connected.is_set()

            await h.until(reconnected, "the agent's second session, with its new certificate", timeout_s=10)
            # A planned reconnect (the agent half-closes) never takes the host out of placement.
            assert seen_down == []
            assert tls.generation() > served
            assert _sessions(metrics) == 2  # one reconnect for one re-issue, not a loop
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
