"""Components that come back: a federation started by the launcher supervises its processes. A cell
controller, a compute agent and a router are each SIGKILLed (a crash, not a deliberate stop); each is
reaped and started again on the same ports, whatever dialled it finds it again (the cell's agents
reconnect, so a create at that site is built and runs; the SDK reaches the restarted router), and
`cellfed status` shows the restart."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cellfed.v1 import common_pb2, compute_pb2

from localfed.process_state import process_state
from localfed.supervision import Phase
from localfed.view import wait_ready
from tests.federation_harness import Federation, running_federation

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]
RESTART_DEADLINE_S = 60.0


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(
        tmp_path_factory.mktemp("supervised"), cassandra_cluster.contact_points
    ) as f:
        yield f


async def _restarted(fed: Federation, what: str, restarts: int) -> None:
    deadline = time.monotonic() + RESTART_DEADLINE_S
    while True:
        watch = fed.supervisor.watches()[what]
        if watch.restarts >= restarts and watch.phase == Phase.RUNNING:
            return
        assert time.monotonic() < deadline, f"{what} not restarted in time: {watch}"
        await asyncio.sleep(0.1)


async def _create_runs_at(fed: Federation, site: str, timeout_s: float = 60.0) -> common_pb2.Instance:
    """A create from a client at `site` lands in its own cell and reaches ACTIVE (its agent built it)."""
    client = fed.client(site)
    try:
        inst = await client.create(
            compute_pb2.CreateInstanceRequest(
                request_id=uuid.uuid4().hex, display_name="after-restart", flavor="m1.tiny", image="debian-12"
            )
        )
        assert inst.site == site, inst
        deadline = time.monotonic() + timeout_s
        while inst.status != common_pb2.ACTIVE:
            assert time.monotonic() < deadline, f"{inst.instance_id} still {inst.status} at {site}"
            await asyncio.sleep(0.25)
            inst = await client.get(inst.instance_id)
        return inst
    finally:
        await client.close()


def _status(fed: Federation) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "localfed", "status", "--output", "json", "--dir", str(fed.root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {c["component"]: c for c in json.loads(out.stdout)["components"]}


@pytest.mark.parametrize("what", ["cell:sin1", "agent:sin1-h1", "router:sin1"])
async def test_a_killed_component_comes_back_on_its_ports_and_is_found_again(
    fed: Federation, what: str
) -> None:
    old = fed.procs[what]
    argv = list(fed.argvs[what])
    fed.signal(what, signal.SIGKILL)
    await _restarted(fed, what, restarts=1)
    restarted_ms = int(time.time() * 1000)
    new = fed.procs[what]
    assert new.pid != old.pid and process_state(old.pid) == "gone"  # reaped, no zombie
    assert new.args[-len(argv) :] == argv  # same command: same ports, same configuration
    if what == "cell:sin1":
        assert f"127.0.0.1:{fed.cell_ports['sin1']}" in argv
    # every router sees the cell healthy with its hosts up again, and a create there is built and runs:
    # its agents found the cell again (or the restarted agent its cell; or the SDK the restarted router).
    # Hosts up as the cell reports them since the restart: the row it wrote before the kill still says
    # its hosts were up, and a create sent on that is refused by the cell and served by the next site.
    await wait_ready(
        fed,
        timeout_s=RESTART_DEADLINE_S,
        healths=frozenset({common_pb2.HEALTHY}),
        reported_since_ms=restarted_ms,
    )
    await _create_runs_at(fed, "sin1")
    row = _status(fed)[what]
    assert row["alive"] and row["state"] == "running" and row["restarts"] == 1, row
    assert row["pid"] == new.pid and row["last_exit"] == "killed by SIGKILL"
