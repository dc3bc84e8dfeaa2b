"""Every benchmark, run as a user runs it (`cellfed bench ...` as a subprocess) with tiny counts: it must
finish, print its figures as JSON and, where the design promises something the figures show, show it.
These are smoke runs, not the benchmarks: no latency target is asserted, only what the emulated WAN
makes certain (a client across the WAN pays at least the round trip) and what the design guarantees
(a cut site keeps serving; the index converges after the heal)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localfed.sites import default_sites, rtt_matrix

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]
CELLFED = [sys.executable, "-m", "localfed", "bench"]


def bench(*args: str, timeout_s: float = 600) -> Any:
    run = subprocess.run(
        [*CELLFED, *args, "--output", "json"], capture_output=True, text=True, timeout=timeout_s
    )
    assert run.returncode == 0, f"cellfed bench {' '.join(args)} failed:\n{run.stdout}\n{run.stderr[-4000:]}"
    return json.loads(run.stdout)


@pytest.mark.timeout(900)
def test_bench_locality_compares_the_three_designs(tmp_path: Path) -> None:
    chart = tmp_path / "locality.png"
    figures = bench(
        "locality", "--per-site", "2", "--rtt-scale", "0.5", "--dir", str(tmp_path),
        "--chart", str(chart), "--cassandra-address-base", "127.0.10.11",
    )  # fmt: skip
    assert set(figures) == {"p2p", "central", "sync"}
    for mode, by_site in figures.items():
        assert set(by_site) == {"par1", "nyc1", "sin1"}, mode
        for site, ops in by_site.items():
            assert ops["create"]["n"] == 2 and ops["get (own site)"]["n"] == 2, (mode, site)
    # Central: a client at Singapore crosses the WAN to the one router in Paris for every request.
    rtt = rtt_matrix(default_sites(3), 0.5)[("sin1", "par1")]
    assert figures["central"]["sin1"]["get (own site)"]["p50_ms"] >= rtt * 0.95
    assert figures["central"]["sin1"]["get (own site)"]["served_by"] == ["sin1-c1"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "locality.json").read_text()) == figures


@pytest.mark.timeout(600)
def test_bench_partition_cut_site_keeps_serving_and_index_converges(tmp_path: Path) -> None:
    report = bench(
        "partition", "--before-s", "4", "--cut-s", "20", "--after-s", "4", "--rate", "2",
        "--rtt-scale", "0.2", "--converge-timeout-s", "180", "--dir", str(tmp_path),
        "--cassandra-address-base", "127.0.11.11",
    )  # fmt: skip
    assert report["cut_site"] == "sin1"
    during = report["phases"]["cut"]
    for side in ("cut side", "rest"):
        for op in ("create", "get (own)"):
            row = during[f"{side}: {op}"]
            assert row["n"] >= 5 and row["success_rate"] >= 0.9, (side, op, row)
    # Across the cut, instances made well before it still answer (from the index, marked UNKNOWN); newer
    # ones this side may never have seen are refused as UNAVAILABLE (naming the site), never otherwise.
    across = during["rest: get (other site)"]
    assert across["success_rate"] >= 0.9 and across["stale"] >= 1, across
    unseen = during["cut side: get (other site, made later)"]
    assert set(unseen["errors"]) <= {"UNAVAILABLE"} and unseen["errors"], unseen
    assert report["convergence"]["converged"], report["convergence"]
    assert report["convergence"]["instances_checked"] >= 20


@pytest.mark.timeout(600)
def test_bench_cell_router_and_store_print_their_figures(tmp_path: Path, cassandra_cluster: Any) -> None:
    cell = bench(
        "cell", "--n", "10", "--hosts", "2", "--placement-repeats", "5", "--dir", str(tmp_path / "cell"),
        "--cassandra-address-base", "127.0.12.11",
    )  # fmt: skip
    assert (cell["instances"], cell["errors"], cell["ack_ms"]["n"]) == (10, 0, 10)
    assert [p["n_hosts"] for p in cell["placement"]] == [1_000, 10_000]
    assert [c["n_hosts"] for c in cell["core_build"]] == [1_000, 10_000]
    assert all(c["core_cpu_p50_us"] > 0 and c["rebuild_cpu_p50_us"] > 0 for c in cell["core_build"])
    nic = cell["with_nic"]  # the same builds on a cell with a provider network: each took an address
    assert (nic["instances"], nic["errors"], nic["with_address"]) == (10, 0, 10) and cell["with_address"] == 0
    assert [a["held"] for a in cell["address_build"]] == [0, 1_000, 10_000]
    assert all(a["with_cpu_p50_us"] > 0 and a["without_cpu_p50_us"] > 0 for a in cell["address_build"])
    router = bench(
        "router", "--gets", "20", "--instances", "5", "--list-rows", "1000", "--concurrency", "4",
        "--dir", str(tmp_path / "router"), "--cassandra-address-base", "127.0.13.11",
    )  # fmt: skip
    assert router["routed_get_ms"]["n"] == 20 and router["direct_get_ms"]["n"] == 20, router
    assert "listing" in router
    store = bench(
        "store", "--contact-points", ",".join(cassandra_cluster.contact_points), "--port",
        str(cassandra_cluster.port), "--local-dc", "eu-west", "--remote-dc", "us-east", "--n", "10",
        "--keyspace", "smoke_store",
    )  # fmt: skip
    assert store["index_write_local_quorum"]["n"] == 10 and store["claim_lwt_local_serial"]["n"] == 10
