"""What `cellfed status` says of a component: its process as the kernel sees it (a zombie is dead, a
SIGSTOPped process is alive but not serving) combined with what the supervisor recorded (restarting,
held down, how many restarts). `describe` is pure; `process_state` is the one read of /proc."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def process_state(pid: int, proc: Path = Path("/proc")) -> str:
    """'running', 'stopped' (SIGSTOP or traced), 'zombie' (exited, not reaped) or 'gone'."""
    if pid <= 0:
        return "gone"
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return "gone"
    except OSError:
        return "running"  # exists, but not ours to read
    # The command name in parentheses may hold spaces or parentheses: the state follows the last ')'.
    letter = stat.rpartition(")")[2].split()[0]
    return {"Z": "zombie", "X": "gone", "T": "stopped", "t": "stopped"}.get(letter, "running")


def describe(
    name: str,
    pid: int,
    kernel: str,
    supervision: Mapping[str, Any],
    metrics: str,
    supervisor_alive: bool,
) -> dict[str, Any]:
    """One row of `cellfed status`: alive is the truth about the process; state says what it is doing."""
    alive = kernel in ("running", "stopped")
    phase = supervision.get("phase", "")
    if phase == "restarting" and supervisor_alive:
        state = "restarting"  # dead and waiting out its backoff, or its new process not ready yet
    elif not alive:
        state = "held down" if phase == "held" else "dead"
    elif kernel == "stopped":
        state = "stopped (SIGSTOP)"
    else:
        state = "running"
    return {
        "component": name,
        "pid": pid,
        "alive": alive,
        "state": state,
        "restarts": int(supervision.get("restarts", 0)),
        "failures": int(supervision.get("failures", 0)),
        "last_exit": str(supervision.get("last_exit", "")),
        "metrics": metrics,
    }


def component_row(
    name: str, pid: int, supervision: Mapping[str, Any], metrics: str, supervisor_alive: bool
) -> dict[str, Any]:
    return describe(name, pid, process_state(pid), supervision, metrics, supervisor_alive)
