"""Token revocation through the global keyspace, in one process (tests.inprocess.harness, whose store is
the shared twin): a revoked token, or every token of a tenant issued before a time, is refused by every
router from its next refresh of the list (each heartbeat; `sync()` here), and nothing else is."""

from __future__ import annotations

import time

import grpc
import pytest
from cellfed.v1 import compute_pb2_grpc
from google.protobuf import empty_pb2

from cellapi.auth import bearer_interceptors
from cellapi.auth.tokens import revocation_of_tenant, revocation_of_token
from tests.inprocess.harness import SITES, Harness, cells


async def _whoami(h: Harness, site: str, token: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{h.routers[site].port}", interceptors=bearer_interceptors(token)
    ) as channel:
        try:
            await compute_pb2_grpc.ComputeServiceStub(channel).WhoAmI(empty_pb2.Empty(), timeout=3)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("attempt", range(2))
async def test_a_revoked_token_is_refused_by_every_router_after_its_refresh(attempt: int) -> None:
    async with Harness.running(SITES, cells(), routers=["par1", "nyc1"]) as h:
        leaked, kept = h.token(), h.token()
        assert {await _whoami(h, s, leaked) for s in h.routers} == {grpc.StatusCode.OK}
        await h.store.revocations.revoke(revocation_of_token(leaked, int(time.time() * 1000), "leaked"))
        await h.sync()  # what each router's heartbeat-period refresh does
        assert {await _whoami(h, s, leaked) for s in h.routers} == {grpc.StatusCode.UNAUTHENTICATED}
        assert {await _whoami(h, s, kept) for s in h.routers} == {grpc.StatusCode.OK}


async def test_a_tenant_revocation_refuses_its_older_tokens_only() -> None:
    async with Harness.running(SITES, cells(), routers=["par1"]) as h:
        old, other = h.token("acme", issued_s_ago=5), h.token("other", issued_s_ago=5)
        await h.store.revocations.revoke(revocation_of_tenant("acme", int(time.time() * 1000)))
        await h.sync()
        fresh = h.token("acme", issued_s_ago=-2)  # minted after the revocation
        assert await _whoami(h, "par1", old) == grpc.StatusCode.UNAUTHENTICATED
        assert await _whoami(h, "par1", other) == grpc.StatusCode.OK
        assert await _whoami(h, "par1", fresh) == grpc.StatusCode.OK
