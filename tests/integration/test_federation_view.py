"""The operator's federation view over a real federation (tests/federation_harness.py): every router shows
every site's traffic (from the reports routers publish with their heartbeats, read in its own DC) and
every cell's instances by status; `cellctl sites` and `cellctl top` (bounded, and live in a real
terminal under tmux) show them; a killed site stays in the view with the age of what is known."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from cellfed.v1 import common_pb2, federation_pb2

from cellapi.client import Client
from fedlib import errors
from tests.federation_harness import SITES, Federation, running_federation
from tests.integration.test_routers import create_request, wait_status

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]

NAMES = sorted(s.site for s in SITES)


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(
        tmp_path_factory.mktemp("federation"), cassandra_cluster.contact_points
    ) as f:
        yield f


async def view_from(fed: Federation, site: str) -> federation_pb2.ListSitesResponse:
    admin = Client([fed.router(site)], fed.tokens["admin"], timeout_s=5)
    try:
        return await admin.sites()
    finally:
        await admin.close()


async def until(
    fed: Federation, site: str, ok: Callable[[federation_pb2.ListSitesResponse], bool], what: str, s: float
) -> federation_pb2.ListSitesResponse:
    deadline = time.monotonic() + s
    while True:
        view = await view_from(fed, site)
        if ok(view):
            return view
        assert time.monotonic() < deadline, f"router {site} never showed {what}: {view}"
        await asyncio.sleep(0.5)


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=30, **kw)


async def cellctl(fed: Federation, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "cellapi.cli",
        "--router",
        fed.router("par1"),
        "--token",
        fed.tokens["admin"],
    ]
    return await asyncio.to_thread(run, [*cmd, *args])


def by_site(view: federation_pb2.ListSitesResponse) -> dict[str, federation_pb2.SiteView]:
    return {s.site: s for s in view.sites}


async def _traffic(fed: Federation) -> dict[str, list[str]]:
    """Two ACTIVE instances per site, made through that site's router, and misses that end NOT_FOUND."""
    made: dict[str, list[str]] = {}
    for site in SITES:
        client = fed.client(site.site)
        try:
            ids = [
                (await client.create(create_request(f"view-{site.site}-{n}"))).instance_id for n in range(2)
            ]
            for iid in ids:
                await wait_status(client, iid, common_pb2.ACTIVE)
            for _ in range(5):
                with pytest.raises((errors.NotFound, errors.InvalidArgument)) as err:
                    await client.get(f"{site.cell}.{uuid.uuid4().hex[:26]}")
                assert err.value.rpc_code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
        finally:
            await client.close()
        made[site.site] = ids
    return made


async def test_every_router_shows_every_sites_traffic_and_instances_by_status(fed: Federation) -> None:
    await _traffic(fed)

    def complete(view: federation_pb2.ListSitesResponse) -> bool:
        sites = by_site(view)
        return set(sites) == set(NAMES) and all(
            s.traffic.errors_per_second > 0
            and s.traffic.HasField("p99_latency")
            and s.cells[0].instances_by_status.get("ACTIVE", 0) >= 2
            for s in sites.values()
        )

    for observer in NAMES:  # the same view from every site: each read from its own DC
        view = await until(fed, observer, complete, "traffic and ACTIVE counts for every site", 40)
        for s in view.sites:
            t = s.traffic
            assert 0 < t.errors_per_second <= t.requests_per_second < 1000, (observer, s.site, t)
            assert 0 < t.p99_latency.ToMilliseconds() < 10_000, (observer, s.site)
            assert 0 <= t.data_age.ToMilliseconds() < 10_000 and 0 < t.window.ToSeconds() <= 31
            cell = s.cells[0]
            assert sum(cell.instances_by_status.values()) == cell.capacity.instances, (s.site, cell)
        print(f"\nfrom {observer}: " + ", ".join(
            f"{s.site} {s.traffic.requests_per_second:.2f} req/s {s.traffic.errors_per_second:.2f} err/s "
            f"p99 {s.traffic.p99_latency.ToMilliseconds()} ms {dict(s.cells[0].instances_by_status)}"
            for s in view.sites
        ))  # fmt: skip


async def test_cellctl_sites_json_and_a_bounded_top(fed: Federation) -> None:
    out = await cellctl(fed, "-o", "json", "sites")
    assert out.returncode == 0, out.stderr
    sites = {s["site"]: s for s in json.loads(out.stdout)["sites"]}
    assert set(sites) == set(NAMES)
    for s in sites.values():
        assert s["traffic"]["requestsPerSecond"] > 0 and "dataAge" in s["traffic"]
        assert s["cells"][0]["instancesByStatus"]["ACTIVE"] >= 2
    table = await cellctl(fed, "sites")
    assert table.returncode == 0 and "REQ/S" in table.stdout and "ACTIVE=" in table.stdout
    started = time.monotonic()
    top = await cellctl(fed, "top", "--iterations", "3", "--interval", "0.5")
    elapsed = time.monotonic() - started
    assert top.returncode == 0, top.stderr
    frames = top.stdout.split("cellctl top: ")[1:]
    assert len(frames) == 3 and all(all(n in f for n in NAMES) for f in frames), top.stdout
    assert "3 sites, 3 healthy" in frames[-1] and "ACTIVE=" in frames[-1]
    print(f"\ncellctl top, 3 refreshes at 0.5 s: {elapsed:.2f} s (process start included)")


async def test_top_redraws_live_in_a_terminal(fed: Federation, tmp_path: Any) -> None:
    tmux_bin = shutil.which("tmux")
    if tmux_bin is None:
        pytest.skip("tmux is not installed")
    session = f"top-{uuid.uuid4().hex[:6]}"

    async def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TERM": "xterm-256color"}
        return await asyncio.to_thread(run, [tmux_bin, "-S", str(tmp_path / "tmux.sock"), *args], env=env)

    cmd = " ".join(
        [sys.executable, "-m", "cellapi.cli", "--router", fed.router("par1"), "--token",
         fed.tokens["admin"], "top", "--interval", "0.5"]
    )  # fmt: skip
    started = await tmux("new-session", "-d", "-s", session, "-x", "220", "-y", "40", cmd)
    assert started.returncode == 0, started.stderr
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            screen = (await tmux("capture-pane", "-p", "-t", session)).stdout
            if all(n in screen for n in NAMES) and "observed from par1 at" in screen:
                seen.append(screen.split("observed from par1 at ")[1][:12])
                if len(set(seen)) >= 2:  # the clock in the header moved: it redraws in place
                    break
            await asyncio.sleep(0.5)
        assert len(set(seen)) >= 2, screen
        assert screen.count("cellctl top:") == 1  # one frame, redrawn, not frames scrolling by
        await tmux("send-keys", "-t", session, "C-c")
        await asyncio.sleep(1.0)
        assert (await tmux("has-session", "-t", session)).returncode != 0, "top did not exit on Ctrl-C"
    finally:
        await tmux("kill-server")


async def test_a_killed_site_stays_in_the_view_with_the_age_of_its_last_report(fed: Federation) -> None:
    """Destructive: the whole of sin1 (router, cell, agent) is killed."""
    before = by_site(await view_from(fed, "par1"))["sin1"]
    assert before.traffic.requests_per_second > 0
    for what in ("router:sin1", "cell:sin1", "agent:sin1-h1"):
        fed.kill(what)
    killed = time.monotonic()

    def gone(view: federation_pb2.ListSitesResponse) -> bool:
        sin = by_site(view).get("sin1")
        return sin is not None and "sin1" in view.unreachable_sites and not sin.routers

    view = await until(fed, "par1", gone, "sin1 unreachable with no live router", 30)
    sin = by_site(view)["sin1"]
    assert sin.health in (common_pb2.OFFLINE, common_pb2.SUSPECT, common_pb2.HEALTH_UNKNOWN)
    assert sin.traffic.requests_per_second > 0  # its last report, not a zero
    age_s = sin.traffic.data_age.ToMilliseconds() / 1000
    assert age_s >= time.monotonic() - killed - 3, age_s  # the report is as old as the kill, not fresher
    assert sin.cells[0].instances_by_status.get("ACTIVE", 0) >= 2  # last known, with capacity_age
    admin = Client([fed.router("nyc1")], fed.tokens["admin"], timeout_s=5)
    try:
        matrix = await admin.rtt_matrix()
    finally:
        await admin.close()
    row = next(r for r in matrix.rows if r.from_site == "sin1")
    assert row.data_age.ToMilliseconds() >= sin.traffic.data_age.ToMilliseconds() - 3_000
    started = time.monotonic()
    top = await cellctl(fed, "top", "--once")
    took = time.monotonic() - started
    assert top.returncode == 0, top.stderr
    sin_line = next(line for line in top.stdout.splitlines() if line.startswith("sin1"))
    assert "(unreachable)" in sin_line and "ago" in sin_line, top.stdout
    assert took < 10, took
    print(f"\ncellctl top --once with sin1 dead: {took:.2f} s\n{top.stdout}")
