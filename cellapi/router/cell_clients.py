"""gRPC clients of the cells, one channel per endpoint, reused. Every call has a deadline; a failure comes
back as a fedlib error naming the site and cell, so the caller's status says where the problem is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from cellfed.v1 import cell_pb2_grpc

from fedrpc.channel import open_channel
from fedrpc.status import error_from_rpc
from replication.model import Cell


class CellClients:
    def __init__(self, dial: Callable[[str], str] = lambda endpoint: endpoint) -> None:
        self._dial = dial
        self._stubs: dict[str, tuple[grpc.aio.Channel, cell_pb2_grpc.CellServiceStub]] = {}

    def stub(self, endpoint: str) -> cell_pb2_grpc.CellServiceStub:
        entry = self._stubs.get(endpoint)
        if entry is None:
            channel = open_channel(self._dial(endpoint))
            entry = (channel, cell_pb2_grpc.CellServiceStub(channel))
            self._stubs[endpoint] = entry
        return entry[1]

    async def call(self, cell: Cell, method: str, request: Any, timeout_s: float) -> Any:
        try:
            return await getattr(self.stub(cell.endpoint), method)(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, target=f"site {cell.site_id} (cell {cell.cell_id})") from None

    async def close(self) -> None:
        for channel, _ in self._stubs.values():
            await channel.close()
        self._stubs.clear()
