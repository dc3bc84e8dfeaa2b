"""The main job as a user runs it: `cellfed up --keep` brings a 3-site federation up and runs the sample
workload, `cellfed status` shows every component alive, `cellfed down` stops everything and leaves no
process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]
CELLFED = [sys.executable, "-m", "localfed"]
UP_DEADLINE_S = 240


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "fed"
    up = subprocess.Popen(
        [
            *CELLFED,
            "up",
            "--keep",
            "--per-site",
            "2",
            "--rtt-scale",
            "0.5",
            "--dir",
            str(state),
            "--cassandra-address-base",
            "127.0.9.11",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + UP_DEADLINE_S
        assert up.stdout is not None
        while not any("up: explore" in line for line in output):
            line = up.stdout.readline()
            assert line or up.poll() is None, "cellfed up exited early:\n" + "".join(output)
            output.append(line)
            assert time.monotonic() < deadline, "cellfed up not ready in time:\n" + "".join(output)
        text = "".join(output)
        assert "federation ready" in text
        for site in ("par1", "nyc1", "sin1"):  # the workload ran from every site, served by its own cell
            assert f"{site}-c1" in text
        # each site's instances got addresses from its own /26 (localfed.site_networks), first ones first
        assert all(address in text for address in ("203.0.113.10", "203.0.113.74", "203.0.113.138")), text
        status = subprocess.run(
            [*CELLFED, "status", "--output", "json", "--dir", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        components = json.loads(status.stdout)["components"]
        # supervisor + per site: cell, 2 agents, router, its region's Cassandra node (all supervised)
        assert len(components) == 1 + 3 * (1 + 2 + 1 + 1)
        assert all(c["alive"] for c in components), components
        pids = [c["pid"] for c in components]
        subprocess.run([*CELLFED, "down", "--dir", str(state)], check=True, timeout=120, capture_output=True)
        assert up.wait(30) == 0
        time.sleep(1)
        assert [p for p in pids if _alive(p)] == []
        java = subprocess.run(["pgrep", "-f", str(state / "cassandra")], capture_output=True, text=True)
        assert java.stdout.strip() == "", "a Cassandra node of this federation is still running"
    finally:
        if up.poll() is None:
            subprocess.run([*CELLFED, "down", "--dir", str(state)], timeout=120, capture_output=True)
            up.kill()
