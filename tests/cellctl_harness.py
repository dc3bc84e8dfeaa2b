"""`cellctl` as a subprocess, the way users run it: the installed console script with --router and
--token, and an environment without CELLFED_* settings, against a federation from the test harness."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.federation_harness import Federation

# The console script installed next to the interpreter running the tests (the project's venv).
CELLCTL = str(Path(sys.executable).parent / "cellctl")


def argv(fed: Federation, token: str, site: str, args: tuple[str, ...]) -> list[str]:
    env_free = ["--router", fed.router(site), "--token", fed.tokens.get(token, token)]
    return [CELLCTL, *env_free, *args]


async def cellctl(
    fed: Federation, *args: str, token: str = "acme", site: str = "par1"
) -> subprocess.CompletedProcess[str]:
    """Runs cellctl to completion off the event loop; the environment carries no CELLFED_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLFED_")}
    return await asyncio.to_thread(
        subprocess.run, argv(fed, token, site, args), capture_output=True, text=True, timeout=60, env=env
    )


def field(table_output: str, name: str) -> str:
    """A value from a field/value table (`get`, `create`)."""
    for line in table_output.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == name:
            return value.strip()
    raise AssertionError(f"no {name!r} in:\n{table_output}")
