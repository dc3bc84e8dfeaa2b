"""`cellfed bench chaos`, a short run as a user runs it: three sites under a mixed load from every site
while the nemesis SIGKILLs, SIGSTOPs and cuts routers, cells, agents, Cassandra nodes and sites' WAN
links, and the supervisor brings killed components back. Afterwards every acknowledged operation is
checked against every source of truth (each router's listing, the index in every DC, the cell records,
the hosts' domains). DESIGN principle 7: nothing acknowledged is lost, no record or domain is orphaned,
no request id becomes two instances."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]
CHAOS = [sys.executable, "-m", "localfed", "bench", "chaos"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("chaos")
    args = [
        "--duration", "90", "--nemesis-interval", "10", "--seed", "11", "--rate", "1.5",
        "--settle-timeout-s", "60", "--dir", str(where), "--json", str(where / "chaos.json"),
        "--chart", str(where / "chaos.png"), "--cassandra-address-base", "127.0.21.11",
    ]  # fmt: skip
    run = subprocess.run([*CHAOS, *args], capture_output=True, text=True, timeout=420)
    assert run.returncode == 0, f"cellfed bench chaos failed:\n{run.stdout}\n{run.stderr[-4000:]}"
    print(run.stdout)  # the tables, for whoever reads the test log
    assert (where / "chaos.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data: dict[str, Any] = json.loads((where / "chaos.json").read_text())
    return data


@pytest.mark.timeout(480)
def test_the_run_did_work_under_faults_of_every_kind(report: dict[str, Any]) -> None:
    assert report["acknowledged_creates"] >= 20 and report["acknowledged_deletes"] >= 5, report["operations"]
    assert {f["kind"] for f in report["faults"]} == {"kill", "pause", "cut"}, report["faults"]
    assert sum(report["restarts"].values()) >= 1  # killed components came back
    assert set(report["success"]) == {"par1", "nyc1", "sin1"}
    assert report["settle"]["converged"], report["defects"]
    checked = report["checked"]  # the checker saw every source, and something in them
    assert checked["live_instances"] >= 3 and checked["domains"] >= 1, checked
    assert checked["index_dcs"] == checked["listings"] == checked["cells"] == 3, checked


def test_no_acknowledged_create_is_lost(report: dict[str, Any]) -> None:
    assert report["counts"]["lost"] == 0, report["defects"]["lost"]
    assert report["counts"]["undeleted"] == 0, report["defects"]["undeleted"]


def test_nothing_is_orphaned_or_stuck(report: dict[str, Any]) -> None:
    assert report["counts"]["orphaned"] == 0, report["defects"]["orphaned"]
    assert report["counts"]["stuck"] == 0, report["defects"]["stuck"]


def test_no_request_id_becomes_two_instances(report: dict[str, Any]) -> None:
    assert report["counts"]["duplicate"] == 0, report["defects"]["duplicate"]
