"""The one handler wrapper, unary and streaming alike: a fedlib error ends the call with its mapped code,
anything else INTERNAL, and every call is counted by method and code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from fedlib.errors import NotFound
from fedrpc.deadlines import share_of_deadline
from fedrpc.handlers import streaming, unary


class Context:
    def __init__(self, remaining_s: float | None = None) -> None:
        self.ended: Any = None
        self.remaining_s = remaining_s

    def time_remaining(self) -> float | None:
        return self.remaining_s

    async def abort_with_status(self, status: Any) -> None:
        self.ended = status.code
        raise grpc.aio.AbortError()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.ended = code
        raise grpc.aio.AbortError()

    def code(self) -> Any:
        return self.ended


class Servicer:
    def __init__(self) -> None:
        self.counted: list[tuple[str, str]] = []

    def count_request(self, method: str, code: str, seconds: float) -> None:
        self.counted.append((method, code))

    @unary()
    async def Get(self, request: str, context: Any) -> str:
        if request == "missing":
            raise NotFound("no such thing", field="name")
        if request == "bug":
            raise KeyError("oops")
        return request.upper()

    @streaming()
    async def Watch(self, request: str, context: Any) -> AsyncIterator[str]:
        yield "first"
        if request == "missing":
            raise NotFound("gone", field="name")
        yield "second"


async def test_unary_calls_are_answered_mapped_and_counted() -> None:
    s = Servicer()
    assert await s.Get("ok", Context()) == "OK"
    for request, code in (("missing", grpc.StatusCode.NOT_FOUND), ("bug", grpc.StatusCode.INTERNAL)):
        context = Context()
        with pytest.raises(grpc.aio.AbortError):
            await s.Get(request, context)
        assert context.ended == code
    assert s.counted == [("Get", "OK"), ("Get", "NOT_FOUND"), ("Get", "INTERNAL")]


async def test_streams_are_mapped_and_counted_like_unary_calls() -> None:
    s = Servicer()
    assert [item async for item in s.Watch("ok", Context())] == ["first", "second"]
    got, context = [], Context()
    with pytest.raises(grpc.aio.AbortError):
        async for item in s.Watch("missing", context):
            got.append(item)
    assert got == ["first"] and context.ended == grpc.StatusCode.NOT_FOUND
    assert s.counted == [("Watch", "OK"), ("Watch", "NOT_FOUND")]


async def test_a_handlers_remote_calls_see_its_callers_deadline() -> None:
    class Forwarding:
        @unary()
        async def Get(self, request: str, context: Any) -> float:
            return share_of_deadline(5.0)

    assert await Forwarding().Get("x", Context(remaining_s=1.0)) <= 0.8
    assert await Forwarding().Get("x", Context()) == 5.0
