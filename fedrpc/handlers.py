"""One wrapper for every unary handler (and its twin for server-streaming ones): the caller's deadline is
set for the remote calls the handler makes (fedrpc.deadlines), fedlib errors become
their mapped status (with details), anything unexpected becomes INTERNAL with a log line (never a crashed
process), and every call is counted by method, code and duration through the servicer's
`count_request(method, code, seconds)` when it has one."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from fedlib.errors import CellfedError
from fedrpc.deadlines import caller_deadline
from fedrpc.status import abort_with, status_code_for

log = logging.getLogger(__name__)

R = TypeVar("R")


@contextlib.asynccontextmanager
async def _answered(servicer: Any, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """What every handler's body runs inside: the caller's deadline (fedrpc.deadlines), the error
    mapping, the log line and the count."""
    code = "OK"
    started = time.perf_counter()
    try:
        with caller_deadline(context.time_remaining()):
            yield
    except asyncio.CancelledError:  # the client went away (or its deadline passed)
        code = "CANCELLED"
        raise
    except CellfedError as exc:
        code = status_code_for(exc).name
        await abort_with(context, exc)  # raises grpc's AbortError
    except grpc.aio.AbortError:
        code = context.code().name if context.code() else "UNKNOWN"
        raise
    except Exception:
        code = "INTERNAL"
        log.exception("%s failed", method)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; see the server log")
    finally:
        count = getattr(servicer, "count_request", None)
        if count is not None:
            count(method, code, time.perf_counter() - started)


def unary() -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    def wrap(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        method = fn.__name__

        @functools.wraps(fn)
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
            async with _answered(self, method, context):
                return await fn(self, request, context)
            raise AssertionError("unreachable: an error always ends the call by aborting it")

        return handler

    return wrap


def streaming() -> Callable[[Callable[..., AsyncIterator[R]]], Callable[..., AsyncIterator[R]]]:
    """`unary` for server-streaming handlers: the same mapping, logging and counting, the duration being
    the stream's whole life. The handler raises fedlib errors; it does not abort by itself."""

    def wrap(fn: Callable[..., AsyncIterator[R]]) -> Callable[..., AsyncIterator[R]]:
        method = fn.__name__

        @functools.wraps(fn)
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[R]:
            async with _answered(self, method, context):
                async for item in fn(self, request, context):
                    yield item

        return handler

    return wrap
