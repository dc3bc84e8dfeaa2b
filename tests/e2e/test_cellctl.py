"""`cellctl` as a user and an operator run it: the installed console script as a subprocess, with
--router and --token, against a real three-site federation (tests/federation_harness.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.cellctl_harness import CELLCTL, argv, cellctl, field
from tests.federation_harness import SITES, Federation, running_federation

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(tmp_path_factory.mktemp("cellctl"), cassandra_cluster.contact_points) as f:
        yield f


async def test_instance_lifecycle_as_a_user(fed: Federation) -> None:
    made = await cellctl(
        fed,
        "create",
        "e2e-web",
        "--flavor",
        "m1.small",
        "--image",
        "debian-12",
        "--label",
        "tier=web",
        "--wait",
        "--wait-timeout",
        "30",
    )
    assert made.returncode == 0, made.stderr
    assert "request id: " in made.stderr
    assert field(made.stdout, "status") == "ACTIVE" and field(made.stdout, "site") == "par1"
    iid = field(made.stdout, "id")

    got = await cellctl(fed, "get", iid, site="sin1")  # any router serves any instance
    assert got.returncode == 0 and field(got.stdout, "status") == "ACTIVE", got.stderr
    assert field(got.stdout, "labels") == "tier=web"

    assert iid in await listed_ids(fed)

    stopped = await cellctl(fed, "stop", iid, site="nyc1")
    assert stopped.returncode == 0 and "STOPPED" in stopped.stdout, stopped.stderr
    started = await cellctl(fed, "-o", "json", "start", iid)
    assert started.returncode == 0 and json.loads(started.stdout)["status"] == "ACTIVE", started.stderr

    watcher = await asyncio.create_subprocess_exec(
        *argv(fed, "acme", "par1", ("watch", iid)), stdout=subprocess.PIPE
    )
    try:
        assert watcher.stdout is not None
        first = await asyncio.wait_for(watcher.stdout.readline(), 30)  # the current state: the watch is live
        assert b"ACTIVE" in first, first
        deleted = await cellctl(fed, "delete", iid)
        assert deleted.returncode == 0 and ("DELETING" in deleted.stdout or "DELETED" in deleted.stdout)
        rest = (await asyncio.wait_for(watcher.communicate(), 30))[0].decode()
    finally:
        if watcher.returncode is None:
            watcher.send_signal(signal.SIGINT)
            await watcher.wait()
    assert watcher.returncode == 0 and rest.splitlines()[-1].split()[1] == "DELETED", rest


async def listed_ids(fed: Federation, timeout_s: float = 15) -> set[str]:
    """The ids `list --all -o json` shows (listing rows are published asynchronously: poll briefly)."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = await cellctl(fed, "-o", "json", "list", "--all", "--page-size", "2", site="nyc1")
        assert out.returncode == 0, out.stderr
        ids = {i["instanceId"] for i in json.loads(out.stdout).get("instances", [])}
        if ids or time.monotonic() > deadline:
            print(f"\n$ cellctl list\n{(await cellctl(fed, 'list', site='nyc1')).stdout}")
            return ids
        await asyncio.sleep(0.5)


async def test_operator_views(fed: Federation) -> None:
    sites = await cellctl(fed, "sites", token="admin")
    assert sites.returncode == 0, sites.stderr
    print(f"\n$ cellctl sites\n{sites.stdout}")
    assert "3 sites, observed from par1" in sites.stdout
    rows = [line.split() for line in sites.stdout.splitlines()[2:]]
    assert sorted(r[0] for r in rows) == sorted(s.site for s in SITES)
    assert all(r[2] == "HEALTHY" for r in rows)
    as_json = await cellctl(fed, "-o", "json", "sites", token="admin", site="sin1")
    assert len(json.loads(as_json.stdout)["sites"]) == 3

    explained = await cellctl(fed, "explain", "--flavor", "m1.small", "--from-site", "sin1", token="admin")
    assert explained.returncode == 0, explained.stderr
    print(f"\n$ cellctl explain --flavor m1.small --from-site sin1\n{explained.stdout}")
    assert "chosen: sin1-c1" in explained.stdout and "ELIGIBLE" in explained.stdout

    matrix = await cellctl(fed, "rtt", token="admin")
    assert matrix.returncode == 0 and len(matrix.stdout.splitlines()) == 1 + len(SITES), matrix.stderr


async def test_drain_turns_creates_away_until_undrained(fed: Federation) -> None:
    near_sin = ("create", "near-sin", "--flavor", "m1.tiny", "--image", "debian-12", "--near-site", "sin1")
    drained = await cellctl(fed, "drain", "sin1-c1", "--site", "sin1", "--reason", "e2e", token="admin")
    assert drained.returncode == 0 and drained.stdout.startswith("sites/sin1/cells/sin1-c1: "), drained.stderr
    try:
        elsewhere = await cellctl(fed, *near_sin, site="sin1")
        assert elsewhere.returncode == 0 and field(elsewhere.stdout, "site") != "sin1", elsewhere.stdout
    finally:
        undrained = await cellctl(fed, "undrain", "sites/sin1/cells/sin1-c1", token="admin")
        assert undrained.returncode == 0, undrained.stderr
    # Other routers learn the undrain from their next directory refresh (every 2 s): wait for sin1's.
    deadline = time.monotonic() + 15
    while True:
        ex = await cellctl(
            fed, "explain", "--flavor", "m1.tiny", "--near-site", "sin1", token="admin", site="sin1"
        )
        if "chosen: sin1-c1" in ex.stdout:
            break
        assert time.monotonic() < deadline, ex.stdout
        await asyncio.sleep(0.5)
    back = await cellctl(fed, *near_sin, site="sin1")
    assert back.returncode == 0 and field(back.stdout, "site") == "sin1", back.stdout
    for out in (elsewhere, back):
        await cellctl(fed, "delete", field(out.stdout, "id"))


async def test_a_drained_cell_shows_as_drained_in_the_operator_views(fed: Federation) -> None:
    try:
        drained = await cellctl(fed, "drain", "sin1-c1", "--site", "sin1", token="admin")
        assert "drained" in drained.stdout.split(":", 1)[1], drained.stdout
        ex = await cellctl(
            fed, "-o", "json", "explain", "--flavor", "m1.tiny", "--from-site", "sin1", token="admin"
        )
        assert json.loads(ex.stdout).get("chosenCell") != "sin1-c1"
    finally:
        await cellctl(fed, "undrain", "sin1-c1", "--site", "sin1", token="admin")


async def test_failures_are_one_line_with_a_distinct_exit_code(fed: Federation) -> None:
    denied = await cellctl(fed, "sites", token="acme")
    assert denied.returncode == 4 and denied.stderr.startswith("error: PERMISSION_DENIED: "), denied.stderr
    malformed = await cellctl(fed, "get", "not-an-id")
    assert malformed.returncode == 2 and malformed.stderr.startswith("error: INVALID_ARGUMENT: ")
    unknown = await cellctl(fed, "get", "par1-c1.01jz8k3m5q7r9t1v3x5z7b9d1f")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: NOT_FOUND: "), unknown.stderr
    for out in (denied, malformed, unknown):
        assert len(out.stderr.splitlines()) == 1 and not out.stdout


async def test_whoami_uses_a_live_router_when_another_is_down(fed: Federation) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLFED_")}
    env |= {"CELLFED_ROUTERS": f"127.0.0.1:1,{fed.router('nyc1')}", "CELLFED_TOKEN": fed.tokens["acme"]}
    out = await asyncio.to_thread(
        subprocess.run, [CELLCTL, "-o", "json", "whoami"], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    me = json.loads(out.stdout)
    assert (me["tenant"], me["routerSite"], me["roles"]) == ("acme", "nyc1", ["user"])
