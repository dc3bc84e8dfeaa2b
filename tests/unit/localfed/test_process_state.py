"""`cellfed status` tells dead from alive: zombies are dead, SIGSTOPped processes alive but stopped."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from localfed.process_state import describe, process_state


def _fake_proc(tmp_path: Path, pid: int, stat: str) -> Path:
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "stat").write_text(stat)
    return tmp_path


def test_states_read_from_proc(tmp_path: Path) -> None:
    root = _fake_proc(tmp_path, 7, "7 (python -m (x)) Z 1 7 7 0")
    assert process_state(7, root) == "zombie"
    assert process_state(8, root) == "gone"
    assert process_state(0, root) == "gone"
    (root / "7" / "stat").write_text("7 (java) T 1 7 7 0")
    assert process_state(7, root) == "stopped"
    (root / "7" / "stat").write_text("7 (java) S 1 7 7 0")
    assert process_state(7, root) == "running"


def test_a_real_unreaped_child_is_a_zombie_and_a_stopped_one_stopped() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        os.kill(child.pid, signal.SIGSTOP)
        os.waitpid(child.pid, os.WUNTRACED)
        assert process_state(child.pid) == "stopped"
        os.kill(child.pid, signal.SIGKILL)
        # waited for without reaping: the kernel keeps it as a zombie, which must not count as alive
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert process_state(child.pid) == "zombie"
    finally:
        child.wait()
    assert process_state(child.pid) == "gone"


def test_rows_combine_the_kernel_and_the_supervisor() -> None:
    restarting = {"phase": "restarting", "restarts": 2, "failures": 1, "last_exit": "killed by SIGKILL"}
    row = describe("cell:par1", 10, "gone", restarting, "", supervisor_alive=True)
    assert row["state"] == "restarting" and not row["alive"] and row["restarts"] == 2
    assert describe("cell:par1", 10, "gone", restarting, "", supervisor_alive=False)["state"] == "dead"
    assert describe("cell:par1", 10, "zombie", {"phase": "running"}, "", True)["state"] == "dead"
    assert describe("cell:par1", 10, "gone", {"phase": "held"}, "", True)["state"] == "held down"
    stopped = describe("router:nyc1", 11, "stopped", {"phase": "running"}, "", True)
    assert stopped["alive"] and stopped["state"] == "stopped (SIGSTOP)"
    assert describe("router:nyc1", 11, "running", {}, "m", True) == {
        "component": "router:nyc1", "pid": 11, "alive": True, "state": "running", "restarts": 0,
        "failures": 0, "last_exit": "", "metrics": "m",
    }  # fmt: skip
