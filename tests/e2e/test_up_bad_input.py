"""`cellfed up` with input it cannot run: one clear message before anything starts, and nothing left
behind (no state file, no Cassandra node, no child process)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CELLFED = [sys.executable, "-m", "localfed"]


def up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CELLFED, "up", "--dir", str(tmp_path / "fed"), *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def assert_nothing_started(tmp_path: Path) -> None:
    fed = tmp_path / "fed"
    assert not (fed / "federation.json").exists()
    assert not (fed / "cassandra").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(fed)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


@pytest.mark.parametrize(
    ("matrix", "words"),
    [
        ({"par1": {"tok1": 80}}, "unknown site 'tok1'"),
        ({"par1": {"nyc1": 80}}, "RTT matrix lacks"),
        ({"par1": {"nyc1": "far"}}, "must be a number of ms"),
    ],
)
def test_a_bad_rtt_matrix_is_refused_before_anything_starts(
    tmp_path: Path, matrix: object, words: str
) -> None:
    path = tmp_path / "rtt.json"
    path.write_text(json.dumps(matrix))
    run = up(tmp_path, "--rtt-matrix", str(path))
    assert run.returncode != 0 and words in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert_nothing_started(tmp_path)


def test_more_sites_than_the_catalog_is_refused(tmp_path: Path) -> None:
    run = up(tmp_path, "--sites", "40")
    assert run.returncode != 0 and "--sites 40" in run.stderr, run.stderr
    assert_nothing_started(tmp_path)


def test_addresses_past_loopback_are_refused(tmp_path: Path) -> None:
    run = up(tmp_path, "--cassandra-address-base", "127.255.255.254")
    assert run.returncode != 0 and "127.0.0.0/8" in run.stderr, run.stderr
    assert_nothing_started(tmp_path)


def test_a_cassandra_port_in_use_is_refused(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.14.12", 9042))  # the second site's node
        busy.listen()
        run = up(tmp_path, "--cassandra-address-base", "127.0.14.11")
    assert run.returncode != 0 and "127.0.14.12:9042 is in use" in run.stderr, run.stderr
    assert_nothing_started(tmp_path)
