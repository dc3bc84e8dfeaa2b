"""Child processes of the local tooling: cellfed components started as `python -m localfed ...` in their
own session (so a whole process group can be signalled), logging to a file, announcing readiness with one
`READY key=value ...` line on stdout. Shared by the demo, the launcher and the tests."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_TIMEOUT_S = 60.0


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "localfed", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_ready(
    proc: subprocess.Popen[bytes], what: str, timeout_s: float = READY_TIMEOUT_S
) -> dict[str, str]:
    """Reads the child's stdout until its READY line and returns its key=value pairs."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if line.startswith("READY"):
            return dict(p.split("=", 1) for p in line.split()[1:])
        if not line and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready; see its log")
    raise TimeoutError(f"{what} was not ready within {timeout_s:.0f}s; see its log")


def stop_all(procs: list[subprocess.Popen[bytes]], grace_s: float = 10.0) -> None:
    """SIGTERM every live group (after SIGCONT, in case a test stopped it), then SIGKILL stragglers."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a child that must be known before it starts (peers dial it).

    Taken below the kernel's ephemeral range: a port picked there and released could be handed to the
    next socket bound to port 0 (a WAN proxy, an outbound connection) before the child binds it."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port below {low} on {host}")


_HANDED_OUT: set[int] = set()


def _ephemeral_low(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default
