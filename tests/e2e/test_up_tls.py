"""`cellfed up --tls` as a user runs it: every gRPC link under mTLS from a PKI made in the run directory,
the sample workload served from every site, `cellctl` reaching a router with the printed CA and refused
without it, and `cellfed down` leaving nothing behind."""

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
CELLCTL = [sys.executable, "-m", "cellapi.cli"]
UP_DEADLINE_S = 240


def _cellctl(state: Path, *args: str, ca: bool) -> subprocess.CompletedProcess[str]:
    fed = json.loads((state / "federation.json").read_text())
    routers = ",".join(fed["routers"].values())
    env = {**os.environ, "CELLFED_ROUTERS": routers, "CELLFED_TOKEN": fed["tokens"]["admin"]}
    env.pop("CELLFED_CA", None)
    if ca:
        env["CELLFED_CA"] = fed["ca"]
    return subprocess.run(
        [*CELLCTL, "--timeout", "5", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_up_tls_runs_the_workload_over_mtls_and_cellctl_needs_the_ca(tmp_path: Path) -> None:
    state = tmp_path / "fed"
    argv = [*CELLFED, "up", "--tls", "--keep", "--per-site", "2", "--rtt-scale", "0.5", "--dir", str(state),
            "--cassandra-address-base", "127.0.16.11"]  # fmt: skip
    up = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
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
        assert "federation ready" in text and "CELLFED_CA=" in text
        for site in ("par1", "nyc1", "sin1"):  # the workload ran from every site, served by its own cell
            assert f"{site}-c1" in text
        fed = json.loads((state / "federation.json").read_text())
        assert Path(fed["ca"]).is_file()
        assert all(not key.stat().st_mode & 0o077 for key in (state / "pki").rglob("*.key"))
        sites = _cellctl(state, "--output", "json", "sites", ca=True)
        assert sites.returncode == 0, sites.stderr
        assert {s["name"] for s in json.loads(sites.stdout)["sites"]} == {
            "sites/par1",
            "sites/nyc1",
            "sites/sin1",
        }
        plaintext = _cellctl(state, "sites", ca=False)
        assert plaintext.returncode != 0  # a TLS-only router: no session in plaintext
    finally:
        subprocess.run([*CELLFED, "down", "--dir", str(state)], timeout=120, capture_output=True)
        if up.poll() is None:
            up.kill()
