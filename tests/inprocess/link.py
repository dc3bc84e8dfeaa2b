"""The network between routers and one cell, in process: a gRPC front that forwards every call (Cell API
and grpc.health.v1) byte for byte to the cell's real server, and does what a test tells it instead.

The cell advertises the front's address (start_cell's `advertise`), so routers, their probes and their
deadlines meet it exactly as they would a WAN link. Compute agents dial the cell directly.

Faults, each for one method (the full gRPC name's last part, e.g. "BuildInstance") or for every call:
- `cut()`: every call fails UNAVAILABLE at once, probes included (a partition, a dead host).
- `lose_answer(method, code)`: the call reaches the cell, which acts on it (persists a build), and the
  caller gets `code` instead of the answer: DEADLINE_EXCEEDED reads as "did not answer in time",
  UNAVAILABLE as "the connection dropped". The ambiguous outcome, without waiting for a deadline.
- `refuse(method, code, message)`: the call never reaches the cell and fails with `code`.
- `hang(method)`: the call never reaches the cell and never answers; the caller's own deadline ends it
  (real time: keep the router's timeouts short in a test that uses it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from cellfed.v1 import cell_pb2

from fedlib.pki.identity import Role
from fedrpc.channel import open_channel
from fedrpc.peer_auth import PeerAuthInterceptor, PeerRule
from fedrpc.tls import ClientTls, ReloadingTls, server_credentials

_STREAMING = frozenset(
    f"/cellfed.v1.CellService/{m.name}"
    for m in cell_pb2.DESCRIPTOR.services_by_name["CellService"].methods
    if m.server_streaming
) | {"/grpc.health.v1.Health/Watch"}


@dataclass
class _Rule:
    method: str | None  # None: every method
    action: str  # "lose" | "refuse" | "hang"
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    message: str = ""
    times: int | None = None  # None: until healed

    def matches(self, full_method: str) -> bool:
        return self.method is None or full_method.rpartition("/")[2] == self.method


@dataclass(frozen=True)
class LinkTls:
    """Under mTLS the front is the cell as routers see it: it shows the cell's certificate and admits
    routers only, by the same rule as the cell; it reaches the cell itself with a router's certificate."""

    front: ReloadingTls
    back: ClientTls
    site: str


class CellLink(grpc.GenericRpcHandler):  # type: ignore[misc]
    """One cell's front. `calls` counts what reached the front, by method name (for assertions)."""

    def __init__(self, tls: LinkTls | None = None) -> None:
        self._tls = tls
        self._server: grpc.aio.Server | None = None
        self._backend: grpc.aio.Channel | None = None
        self._cut = False
        self._rules: list[_Rule] = []
        self.port = 0
        self.calls: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self._tls is None:
            self._server = grpc.aio.server()
            self._server.add_generic_rpc_handlers([self])
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            federation = self._tls.front.files.federation
            rules = {"cellfed.v1.CellService": PeerRule(frozenset({Role.ROUTER}))}
            self._server = grpc.aio.server(interceptors=[PeerAuthInterceptor(federation, rules)])
            self._server.add_generic_rpc_handlers([self])
            credentials = server_credentials(self._tls.front, require_client_cert=True)
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        await self._server.start()

    async def connect(self, backend: str) -> None:
        """Points the front at the cell's server (again, after a restart on another port)."""
        if self._backend is not None:
            await self._backend.close()
        secure = None if self._tls is None else self._tls.back.target(self._tls.site, Role.CELL)
        self._backend = open_channel(backend, secure)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0)
        if self._backend is not None:
            await self._backend.close()

    # -- faults ----------------------------------------------------------------------------------------
    def cut(self) -> None:
        self._cut = True

    def heal(self) -> None:
        self._cut = False
        self._rules.clear()

    def lose_answer(
        self, method: str, code: grpc.StatusCode = grpc.StatusCode.DEADLINE_EXCEEDED, *, times: int = 1
    ) -> None:
        self._rules.append(_Rule(method, "lose", code, "the answer was lost on the way back", times))

    def refuse(self, method: str, code: grpc.StatusCode, message: str, *, times: int | None = 1) -> None:
        self._rules.append(_Rule(method, "refuse", code, message, times))

    def hang(self, method: str | None, *, times: int | None = None) -> None:
        self._rules.append(_Rule(method, "hang", times=times))

    def _rule_for(self, full_method: str) -> _Rule | None:
        for rule in self._rules:
            if rule.matches(full_method):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                return rule
        return None

    # -- forwarding ------------------------------------------------------------------------------------
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        if method in _STREAMING:
            return grpc.unary_stream_rpc_method_handler(self._streaming(method))
        return grpc.unary_unary_rpc_method_handler(self._unary(method))

    def _unary(self, method: str) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            rule = await self._before(method, context)
            backend = self._channel()
            try:
                answer: bytes = await backend.unary_unary(method)(request, timeout=_remaining(context))
            except grpc.aio.AioRpcError as exc:
                await _relay_error(context, exc)  # raises: abort ends the call
                raise
            if rule is not None and rule.action == "lose":
                await context.abort(rule.code, rule.message)
            return answer

        return handle

    def _streaming(self, method: str) -> Callable[[bytes, grpc.aio.ServicerContext], AsyncIterator[bytes]]:
        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            await self._before(method, context)
            call = self._channel().unary_stream(method)(request, timeout=_remaining(context))
            try:
                async for message in call:
                    yield message
            except grpc.aio.AioRpcError as exc:
                await _relay_error(context, exc)
            finally:
                call.cancel()

        return handle

    async def _before(self, method: str, context: grpc.aio.ServicerContext) -> _Rule | None:
        self.calls[method.rpartition("/")[2]] = self.calls.get(method.rpartition("/")[2], 0) + 1
        if self._cut:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "link cut by the harness")
        rule = self._rule_for(method)
        if rule is not None and rule.action == "refuse":
            await context.abort(rule.code, rule.message)
        if rule is not None and rule.action == "hang":
            await asyncio.Event().wait()  # until the caller's deadline cancels the call
        return rule

    def _channel(self) -> grpc.aio.Channel:
        if self._backend is None:
            raise RuntimeError("CellLink used before connect()")
        return self._backend


def _remaining(context: grpc.aio.ServicerContext) -> float | None:
    remaining: float | None = context.time_remaining()
    return None if remaining is None else max(0.001, remaining)


async def _relay_error(context: grpc.aio.ServicerContext, exc: grpc.aio.AioRpcError) -> None:
    """The cell's status, message and rich details (google.rpc.Status in the trailers), as the cell sent
    them; the caller cannot tell the front was there."""
    trailers: Any = exc.trailing_metadata() or ()
    details = tuple((k, v) for k, v in trailers if k == "grpc-status-details-bin")
    await context.abort(exc.code(), exc.details() or "", trailing_metadata=details)
