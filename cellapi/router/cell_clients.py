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

from fedlib.pki.identity import Role
from fedrpc.deadlines import share_of_deadline
from fedrpc.dialer import Dialer
from fedrpc.status import error_from_rpc
from replication.model import Cell


class CellClients:
    def __init__(
        self,
        dialer: Dialer | None = None,
        reachable: Callable[[str], bool] = lambda cell_id: True,
    ) -> None:
        self.dialer, self._reachable = dialer or Dialer(), reachable

    def stub(self, cell: Cell) -> cell_pb2_grpc.CellServiceStub:
        # Under mTLS the cell must present its site's cell certificate (fedrpc.dialer).
        return self.dialer.stub(cell_pb2_grpc.CellServiceStub, cell.endpoint, cell.site_id, Role.CELL)

    async def call(self, cell: Cell, method: str, request: Any, timeout_s: float) -> Any:
        """`timeout_s` caps the call; the caller's own deadline, when nearer, shortens it (with room
        left for the router's answer: fedrpc.deadlines)."""
        try:
            return await getattr(self.stub(cell), method)(
                request, timeout=share_of_deadline(timeout_s), wait_for_ready=self._reachable(cell.cell_id)
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, target=f"site {cell.site_id} (cell {cell.cell_id})") from None

    async def close(self) -> None:
        await self.dialer.close()
