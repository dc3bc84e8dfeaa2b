"""A router's forward to a cell across a link that is cut and healed (a real TCP proxy on loopback, as
the local federation's WAN): while the prober holds the cell unreachable a call fails at once; as soon
as the link is back and the prober says so, the very next call is answered, although the channel is
still in reconnect backoff from the cut (it waits for the connection within its deadline instead of
failing fast: the cause of the cut-site test's UNKNOWN-after-heal)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from cellfed.v1 import cell_pb2, cell_pb2_grpc, common_pb2

from cellapi.router.cell_clients import CellClients
from fedlib.errors import DeadlineExceeded, Unavailable
from localfed.wan_proxy import DelayProxy
from replication.model import Cell, CellState

CUT_S = 2.5  # long enough for gRPC's reconnect backoff to reach its 2 s maximum (fedrpc.channel)


class _Cell(cell_pb2_grpc.CellServiceServicer):
    async def GetInstance(
        self, request: cell_pb2.CellInstanceRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Instance:
        return common_pb2.Instance(instance_id=request.instance_id, status=common_pb2.ACTIVE)


@pytest.fixture
async def proxy() -> AsyncIterator[DelayProxy]:
    server = grpc.aio.server()
    cell_pb2_grpc.add_CellServiceServicer_to_server(_Cell(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    link = DelayProxy("127.0.0.1", port, one_way_ms=1)
    await link.start()
    try:
        yield link
    finally:
        await link.stop()
        await server.stop(grace=None)


@pytest.mark.parametrize("attempt", range(3))
async def test_the_first_call_after_a_heal_is_answered_and_a_cut_cell_fails_fast(
    proxy: DelayProxy, attempt: int
) -> None:
    reachable = {"c1": True}
    clients = CellClients(reachable=lambda cell_id: reachable[cell_id])
    cell = Cell("c1", "s1", "r1", proxy.address, CellState.ENABLED, 0)
    request = cell_pb2.CellInstanceRequest(instance_id="c1.x", tenant="t")
    try:
        assert (await clients.call(cell, "GetInstance", request, 2.0)).status == common_pb2.ACTIVE
        proxy.cut()
        reachable["c1"] = False  # what the prober concludes after its failed probes
        deadline = time.monotonic() + CUT_S
        while time.monotonic() < deadline:
            started = time.monotonic()
            with pytest.raises((Unavailable, DeadlineExceeded)):
                await clients.call(cell, "GetInstance", request, 2.0)
            assert time.monotonic() - started < 1.0  # not waited for: the caller answers from the index
            await asyncio.sleep(0.2)
        proxy.heal()
        reachable["c1"] = True  # the prober's next probe succeeded
        answered = await clients.call(cell, "GetInstance", request, 5.0)
        assert answered.status == common_pb2.ACTIVE
    finally:
        await clients.close()
