"""gRPC clients of the cells, one channel per endpoint, reused. Every call has a deadline; a failure comes
back as a fedlib error naming the site and cell, so the caller's status says where the problem is.

A call to a cell the prober believes reachable waits, within its deadline, for the channel to connect
(gRPC's wait_for_ready). Without that, a channel still in reconnect backoff after a short cut (up to the
2 s maximum backoff, fedrpc.channel) fails every call at once with UNAVAILABLE although the cell is back
and the prober says so: a healed site's instances then read as UNKNOWN from the index. A cell the prober
holds SUSPECT or OFFLINE is not waited for: the caller learns at once and answers from what it has."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from cellfed.v1 import cell_pb2_grpc

from fedrpc.channel import open_channel
from fedrpc.status import error_from_rpc
from replication.model import Cell


class CellClients:
    def __init__(
        self,
        dial: Callable[[str], str] = lambda endpoint: endpoint,
        reachable: Callable[[str], bool] = lambda cell_id: True,
    ) -> None:
        self._dial, self._reachable = dial, reachable
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
            return await getattr(self.stub(cell.endpoint), method)(
                request, timeout=timeout_s, wait_for_ready=self._reachable(cell.cell_id)
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, target=f"site {cell.site_id} (cell {cell.cell_id})") from None

    async def close(self) -> None:
        for channel, _ in self._stubs.values():
            await channel.close()
        self._stubs.clear()
