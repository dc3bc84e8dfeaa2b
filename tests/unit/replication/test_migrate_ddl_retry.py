"""A DDL whose answer timed out is sent again, only after schema agreement, and at most a few times."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fedlib.errors import DeadlineExceeded
from replication.cql import migrate


class Result:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows


class FlakySession:
    """Times out the first `timeouts` DDLs; answers schema queries with one agreed version."""

    local_dc = "eu-west"

    def __init__(self, timeouts: int) -> None:
        self.timeouts, self.log = timeouts, []  # type: int, list[str]

    async def execute(self, statement: str, *args: Any, **kw: Any) -> Result:
        if statement.startswith("SELECT schema_version FROM system.local"):
            self.log.append("agreement?")
            return Result([{"schema_version": "v1"}])
        if statement.startswith("SELECT peer"):
            return Result([{"peer": "127.0.0.2", "schema_version": "v1"}])
        self.log.append("ddl")
        if self.timeouts:
            self.timeouts -= 1
            raise DeadlineExceeded("cassandra dc eu-west: OperationTimedOut: connection defunct by heartbeat")
        return Result([])


async def test_a_timed_out_ddl_is_sent_again_after_agreement() -> None:
    session = FlakySession(timeouts=1)
    await migrate._ddl(session, "CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)", asyncio.Semaphore(1))  # type: ignore[arg-type]
    assert session.log == ["ddl", "agreement?", "ddl", "agreement?"]


async def test_a_ddl_that_keeps_timing_out_is_reported() -> None:
    session = FlakySession(timeouts=10)
    with pytest.raises(DeadlineExceeded):
        await migrate._ddl(
            session, "CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)", asyncio.Semaphore(1)
        )  # type: ignore[arg-type]
    assert session.log.count("ddl") == 3
