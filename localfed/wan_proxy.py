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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
T = TypeVar("T")


class DelayProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        one_way_ms: float,
        listen_host: str = "127.0.0.1",
        *,
        identify: Callable[[bytes], str | None] | None = None,
        delay_for: Callable[[str], float | None] | None = None,
    ) -> None:
        """With `identify` (the caller's id from its first bytes, None until enough arrived) each link's
        one-way delay is `delay_for(id)`, or the link is cut when that is None: so one proxy in front of
        a Cassandra node serves peers of every DC, each at its own distance."""
        self.target = (target_host, target_port)
        self.one_way_s = one_way_ms / 1000
        self._identify, self._delay_for = identify, delay_for
        self.listen_host = listen_host
        self.port = 0
        self.cut_off = False
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.Task[None], _Link] = {}

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, self.listen_host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def cut(self) -> None:
        self.cut_off = True
        for task in list(self._links):
            task.cancel()

    def heal(self) -> None:
        self.cut_off = False

    def drop_from(self, sources: set[str]) -> None:
        """Ends the open links whose far end is one of `sources` (new ones are `by_source`'s call)."""
        for task, link in list(self._links.items()):
            if link.source in sources:
                task.cancel()

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
        link = _Link(self.one_way_s)
        self._links[task] = link
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            del self._links[task]
            return
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, link, True), self._pipe(up_reader, writer, link, False)
            )
        except (asyncio.CancelledError, OSError):  # a side went away, or the link was cut: it ends
            pass
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._links.pop(task, None)

    def _learn_source(self, link: _Link, data: bytes) -> None:
        """Until the caller is known, its first bytes are sniffed; then its delay (or a cut) applies."""
        if self._identify is None or link.source is not None:
            return
        link.sniffed = (link.sniffed + data)[:64]
        source = self._identify(link.sniffed)
        if source is None:
            return
        link.source = source
        one_way_ms = self._delay_for(source) if self._delay_for else self.one_way_s * 1000
        if one_way_ms is None:
            raise ConnectionAbortedError(f"link from {source} is cut")
        link.delay_s = one_way_ms / 1000

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, from_client: bool
    ) -> None:
        """Reads eagerly, delivers each chunk one way later in order; EOF travels with the same delay."""
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
                if from_client:
                    self._learn_source(link, data)
                queue.put_nowait((time.monotonic() + link.delay_s, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()


@dataclass
class _Link:
    delay_s: float
    source: str | None = None
    sniffed: bytes = b""


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

    def add(
        self,
        target_host: str,
        target_port: int,
        one_way_ms: float,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        identify: Callable[[bytes], str | None] | None = None,
        delay_for: Callable[[str], float | None] | None = None,
    ) -> DelayProxy:
        proxy = DelayProxy(
            target_host, target_port, one_way_ms, listen[0], identify=identify, delay_for=delay_for
        )
        self._run(proxy.start(listen[1]))
        self._proxies.append(proxy)
        return proxy

    def cut(self, proxy: DelayProxy) -> None:
        self._loop.call_soon_threadsafe(proxy.cut)

    def heal(self, proxy: DelayProxy) -> None:
        self._loop.call_soon_threadsafe(proxy.heal)

    def drop_from(self, proxy: DelayProxy, sources: set[str]) -> None:
        self._loop.call_soon_threadsafe(proxy.drop_from, sources)

    def stop(self) -> None:
        for proxy in self._proxies:
            self._run(proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
