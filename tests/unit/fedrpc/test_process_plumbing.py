"""The composition-root pieces the three processes share: the READY line, the periodic loop, the clocks."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from fedrpc.clock import monotonic_ms, wall_clock_ms
from fedrpc.periodic import every
from fedrpc.process import announce_ready


def test_ready_line_is_what_the_launcher_parses(capsys: pytest.CaptureFixture[str]) -> None:
    announce_ready("router", "par1-r1", port=7000, metrics=9102, status="off")
    announce_ready("agent", "par1-h1", metrics=9101)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "READY router=par1-r1 port=7000 metrics=9102 status=off",
        "READY agent=par1-h1 metrics=9101",
    ]
    # localfed.processes.wait_ready reads the pairs after the first word
    assert dict(p.split("=", 1) for p in out[0].split()[1:])["port"] == "7000"


async def test_every_logs_a_failed_pass_and_keeps_going(caplog: pytest.LogCaptureFixture) -> None:
    passes: list[int] = []
    fourth = asyncio.Event()

    async def work() -> None:
        passes.append(len(passes))
        if len(passes) == 2:
            raise RuntimeError("store away")
        if len(passes) == 4:
            fourth.set()

    with caplog.at_level(logging.WARNING, logger="fedrpc.periodic"):
        task = asyncio.create_task(every(0.0, work, "heartbeat"))
        await asyncio.wait_for(fourth.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [r.getMessage() for r in caplog.records] == ["heartbeat failed; retrying in 0.0s: store away"]


async def test_every_waits_the_interval_after_each_pass() -> None:
    starts: list[float] = []
    third = asyncio.Event()

    async def work() -> None:
        starts.append(time.monotonic())
        if len(starts) == 3:
            third.set()
        await asyncio.sleep(0.02)

    task = asyncio.create_task(every(0.05, work, "probes"))
    await asyncio.wait_for(third.wait(), 5)
    task.cancel()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.07 for gap in gaps), gaps  # pass (0.02) + interval (0.05): passes never overlap


def test_clocks_are_milliseconds() -> None:
    assert abs(wall_clock_ms() - time.time() * 1000) < 1000
    a = monotonic_ms()
    assert monotonic_ms() >= a
