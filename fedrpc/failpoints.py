"""Failpoints: named places where a test can make this process fail on purpose (etcd's gofail,
FoundationDB's buggify), to create a fault between two steps that no outside signal can time, such as a
cell controller killed after persisting a build and before answering it.

They are armed only through the file named by CELLFED_FAILPOINTS_FILE, read when a failpoint is passed,
so a running test can arm one at the moment it wants. Without that variable (every deployment) a
failpoint costs one attribute read. The file holds lines `name=action`; the one action is `kill`
(SIGKILL to this process: nothing after the failpoint runs, no cleanup, as a crash or an OOM kill)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

_FILE = os.environ.get("CELLFED_FAILPOINTS_FILE", "")


def hit(name: str) -> None:
    if not _FILE:
        return
    try:
        lines = Path(_FILE).read_text().splitlines()
    except OSError:  # not armed (yet)
        return
    if f"{name}=kill" in (line.strip() for line in lines):
        os.kill(os.getpid(), signal.SIGKILL)
