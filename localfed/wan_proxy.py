"""A userspace TCP proxy that adds one-way latency in each direction, and can cut the link: how the local
federation emulates a WAN on one machine (tc netem is not available here; see ENVIRONMENT.md).

Each chunk read from one side is written to the other `one_way_ms` later, in order, so a request/response
round trip costs 2 x one_way_ms plus the real work. `cut()` drops every open connection and refuses new
ones (accept then close) until `heal()`: a partition as TCP peers see it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
T = TypeVar("T")


class DelayProxy:
    def __init__(
        self, target_host: str, target_port: int, one_way_ms: float, listen_host: str = "127.0.0.1"
    ) -> None:
        self.target = (target_host, target_port)
        self.one_way_s = one_way_ms / 1000
        self.listen_host = listen_host
        self.port = 0
        self.cut_off = False
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, self.listen_host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def cut(self) -> None:
        self.cut_off = True
        for link in list(self._links):
            link.cancel()

    def heal(self) -> None:
        self.cut_off = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._links.discard(task)
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.CancelledError, OSError):  # a side went away: the link simply ends
            pass
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._links.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Reads eagerly, delivers each chunk one_way later in order; EOF travels with the same delay."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not data:
                    writer.write_eof() if writer.can_write_eof() else writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(_CHUNK)
                queue.put_nowait((time.monotonic() + self.one_way_s, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()


class ProxyHost:
    """Runs delay proxies on an event loop of their own in a daemon thread, so the links keep flowing
    whatever the caller's loop is doing (a test between awaits, a launcher blocked on a child)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wan-proxies", daemon=True)
        self._thread.start()
        self._proxies: list[DelayProxy] = []

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def add(self, target_host: str, target_port: int, one_way_ms: float) -> DelayProxy:
        proxy = DelayProxy(target_host, target_port, one_way_ms)
        self._run(proxy.start())
        self._proxies.append(proxy)
        return proxy

    def cut(self, proxy: DelayProxy) -> None:
        self._loop.call_soon_threadsafe(proxy.cut)

    def heal(self, proxy: DelayProxy) -> None:
        self._loop.call_soon_threadsafe(proxy.heal)

    def stop(self) -> None:
        for proxy in self._proxies:
            self._run(proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
