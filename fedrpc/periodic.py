"""The periodic loop of every long-running process: heartbeats, directory refreshes, probes, re-asserts.

Level-triggered work is safe to repeat and to miss once, so a failed pass is logged and the loop tries
again on its next tick; it never ends the process (the store or a peer being away is the normal case
it rides out). Cancelling the task is the only way to stop it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(interval_s: float, work: Callable[[], Awaitable[None]], name: str) -> None:
    """Runs `work` now and then every `interval_s` after each pass ends (passes never overlap)."""
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the last view, try again
            # One line per failure: an outage repeats it every tick. The traceback is there at DEBUG.
            log.warning("%s failed; retrying in %.1fs: %s", name, interval_s, exc)
            log.debug("%s failed", name, exc_info=True)
        await asyncio.sleep(interval_s)
