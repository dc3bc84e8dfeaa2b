"""Serves the router's read-only status page (cellapi.router.status_page) over HTTP/1.1 on the router's own
event loop: GET / builds the page from a fresh snapshot, GET /healthz answers "ok", any other path is 404
and any other method 405. One request per connection, and one deadline per request covering reading it,
building the page and writing it. There is no authentication: the page is read-only and shows no tenant
data (sites, cells, capacity, ages, RTTs), so it is bound only where the operator chooses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cellfed.v1 import federation_pb2

from cellapi.router import status_page

log = logging.getLogger(__name__)

Snapshot = tuple[federation_pb2.ListSitesResponse, federation_pb2.RttMatrix]
SnapshotSource = Callable[[], Awaitable[Snapshot]]

MAX_REQUEST_BYTES = 8 * 1024  # request line and headers; a GET has no body
DEADLINE_S = 5.0
MAX_CONNECTIONS = 32  # more at once are turned away: the page must never crowd out the router's work
_WRITE_S = 1.0

# No scripts, nothing from elsewhere, no framing: the page is inline CSS and text only.
_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Connection", "close"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'",
    ),
)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def parse_listen(listen: str) -> tuple[str, int]:
    """ "HOST:PORT" (or "[v6]:PORT"; port 0 picks a free one) -> (host, port); ValueError saying why not."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{listen!r} must look like HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    extra: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}"]
        lines += [f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}"]
        lines += [f"{k}: {v}" for k, v in (*_HEADERS, *self.extra)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + self.body


def _text(status: int, message: str, *extra: tuple[str, str]) -> Reply:
    return Reply(status, "text/plain; charset=utf-8", f"{message}\n".encode(), extra)


class _BadRequest(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


@dataclass
class StatusServer:
    snapshot: SnapshotSource
    clock_ms: Callable[[], int]
    deadline_s: float = DEADLINE_S
    max_connections: int = MAX_CONNECTIONS
    port: int = 0
    _server: asyncio.Server | None = None
    _open: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self, listen: str) -> int:
        host, port = parse_listen(listen)
        self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_REQUEST_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("status page on http://%s:%d/", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._open):
            task.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            reply: Reply | None
            if len(self._open) >= self.max_connections:
                reply = _text(503, "busy: too many status requests at once", ("Retry-After", "1"))
            else:
                self._open.add(task)
                reply = await self._answer(reader)
            if reply is not None:
                writer.write(reply.encode())
                async with asyncio.timeout(_WRITE_S):
                    await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stopped reading: nothing to tell it
        finally:
            self._open.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_WRITE_S):
                    await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Reply | None:
        """The reply to the one request on this connection; None when there is no one to answer."""
        reading = True
        try:
            async with asyncio.timeout(self.deadline_s):
                method, path = await _read_request(reader)
                reading = False
                return await self._route(method, path)
        except _BadRequest as exc:
            return exc.reply
        except asyncio.IncompleteReadError:
            return None  # closed before a whole request arrived
        except TimeoutError:
            if reading:
                return _text(408, "no complete request within the deadline")
            return _text(503, "the federation view took too long to build; try again")

    async def _route(self, method: str, path: str) -> Reply:
        if path not in ("/", "/healthz"):
            return _text(404, "not found: this server has only / and /healthz")
        if method != "GET":
            return _text(405, "only GET is served", ("Allow", "GET"))
        if path == "/healthz":
            return _text(200, "ok")
        try:
            sites, rtt = await self.snapshot()
        except Exception as exc:  # the view is built in-process: say so rather than drop the connection
            log.warning("status page: building the federation view failed: %s", exc)
            return _text(503, "the federation view could not be built; try again")
        page = status_page.render(sites, rtt, self.clock_ms())
        return Reply(200, "text/html; charset=utf-8", page.encode())


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:  # the stream's limit was reached before the head's end
        raise _BadRequest(_text(431, f"request head over {MAX_REQUEST_BYTES} bytes")) from None
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise _BadRequest(_text(400, "malformed request line"))
    method, target = parts[0], parts[1]
    return method, target.split("?", 1)[0].split("#", 1)[0]


async def start_status_server(
    listen: str, snapshot: SnapshotSource, clock_ms: Callable[[], int], *, deadline_s: float = DEADLINE_S
) -> StatusServer:
    """Starts serving on `listen` ("host:port"; port 0 picks a free one) on the running loop."""
    server = StatusServer(snapshot, clock_ms, deadline_s)
    await server.start(listen)
    return server
