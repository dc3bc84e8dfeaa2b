"""fedrpc.deadlines: a remote call made while serving a caller gets at most its own cap and at most a
share of what the caller has left; without a caller's deadline, its cap. Nested and concurrent handlers
each see their own caller's deadline."""

from __future__ import annotations

import asyncio

import pytest

from fedrpc.deadlines import FLOOR_S, SHARE, caller_deadline, share_of_deadline


def test_without_a_callers_deadline_the_cap_holds() -> None:
    assert share_of_deadline(5.0) == 5.0
    with caller_deadline(None):
        assert share_of_deadline(5.0) == 5.0


def test_a_near_deadline_shortens_the_call_and_leaves_room_for_the_answer() -> None:
    with caller_deadline(3.0):
        assert share_of_deadline(5.0) == pytest.approx(3.0 * SHARE, abs=0.01)
        assert share_of_deadline(1.0) == 1.0  # a cap below the share stays
    with caller_deadline(0.0):
        assert share_of_deadline(5.0) == FLOOR_S  # past it: the attempt still fails on its own, fast
    assert share_of_deadline(5.0) == 5.0  # left the handler: no deadline any more


async def test_concurrent_handlers_each_see_their_own_callers_deadline() -> None:
    async def handler(remaining: float) -> float:
        with caller_deadline(remaining):
            await asyncio.sleep(0.01)
            return share_of_deadline(100.0)

    short, long = await asyncio.gather(handler(1.0), handler(10.0))
    assert short < 1.0 * SHARE and 10.0 * SHARE - 0.1 < long < 10.0 * SHARE
