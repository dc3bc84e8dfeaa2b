"""What each process's composition root does the same way around its own assembly: log to stderr with
the role in every line, announce readiness, and wait for SIGTERM or SIGINT.

The READY line is a contract with whatever started the process: the local launcher and the tests read
stdout up to `READY key=value ...` (localfed.processes.wait_ready) to learn the ports a process bound.
It goes to stdout, flushed, and is the only thing written there; logs go to stderr."""

from __future__ import annotations

import asyncio
import logging
import signal


def log_to_stderr(role: str) -> None:
    """INFO and up to stderr; `role` (router, cell, agent) tells the lines of co-located processes apart."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s {role}: %(message)s")


def announce_ready(role: str, name: str, **ports: object) -> None:
    """Prints `READY <role>=<name> key=value ...` (keys in the order given)."""
    fields = " ".join(f"{key}={value}" for key, value in ports.items())
    print(f"READY {role}={name} {fields}".rstrip(), flush=True)


async def until_stopped() -> None:
    """Returns at the first SIGTERM or SIGINT. The handlers stay: a second signal while the caller shuts
    down is absorbed, so a clean stop is never cut short into a traceback."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
