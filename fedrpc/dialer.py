"""Channels to a federation's servers, one per endpoint, reused; with TLS, each made for the role and site
it dials, and replaced when this component's own certificate rotates.

A replaced channel is closed with a grace period, so calls in flight on it finish: a rotation under load
fails no request. Stubs are cached per channel (making one builds a callable per method)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from fedlib.pki.identity import Role
from fedrpc.channel import open_channel
from fedrpc.tls import ClientTls

_Stub = TypeVar("_Stub")

# Long enough for any call's deadline (a watch stream is re-opened by its caller when it ends).
CLOSE_GRACE_S = 30.0


@dataclass
class _Entry:
    channel: grpc.aio.Channel
    server_name: str | None
    generation: int
    stubs: dict[Callable[[grpc.aio.Channel], Any], Any] = field(default_factory=dict)


class Dialer:
    def __init__(
        self, dial: Callable[[str], str] = lambda endpoint: endpoint, tls: ClientTls | None = None
    ) -> None:
        """`dial` maps an endpoint to the address to connect to (the demo's emulated WAN)."""
        self._dial, self._tls = dial, tls
        self._entries: dict[str, _Entry] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def secure(self) -> bool:
        return self._tls is not None

    def generations(self) -> frozenset[int]:
        """The certificate generations the channels held now were made under (a rotation is complete
        once this is only the newest)."""
        return frozenset(entry.generation for entry in self._entries.values())

    def stub(
        self, stub_class: Callable[[grpc.aio.Channel], _Stub], endpoint: str, site: str, role: Role
    ) -> _Stub:
        entry = self._entry(endpoint, site, role)
        stub = entry.stubs.get(stub_class)
        if stub is None:
            stub = entry.stubs[stub_class] = stub_class(entry.channel)
        return stub

    def _entry(self, endpoint: str, site: str, role: Role) -> _Entry:
        entry = self._entries.get(endpoint)
        if self._tls is None:
            if entry is None:
                entry = self._entries[endpoint] = _Entry(open_channel(self._dial(endpoint)), None, 0)
            return entry
        generation = self._tls.generation()
        name = self._tls.server_name(site, role)
        if entry is not None and entry.generation == generation and entry.server_name == name:
            return entry
        target = self._tls.target(site, role)
        fresh = _Entry(open_channel(self._dial(endpoint), target), target.server_name, target.generation)
        self._entries[endpoint] = fresh
        if entry is not None:
            self._retire(entry.channel)
        return fresh

    def _retire(self, channel: grpc.aio.Channel) -> None:
        task = asyncio.get_running_loop().create_task(channel.close(grace=CLOSE_GRACE_S))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            await entry.channel.close()
        for task in list(self._closing):
            task.cancel()
