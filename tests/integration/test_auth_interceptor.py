"""The auth interceptor on a real grpc.aio server (fedrpc.server, 127.0.0.1:0): tokens verified locally,
admin required for the Federation API, claims reaching unary and streaming handlers, probes exempt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cellfed.v1 import common_pb2, compute_pb2, compute_pb2_grpc, federation_pb2, federation_pb2_grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cellapi.auth import (
    AuthInterceptor,
    KeyRing,
    bearer_interceptors,
    bearer_metadata,
    current_claims,
    generate_keypair,
    mint,
    read_private_key,
)
from fedrpc.server import RunningServer, start_server

COMPUTE = compute_pb2.DESCRIPTOR.services_by_name["ComputeService"].full_name
FEDERATION = federation_pb2.DESCRIPTOR.services_by_name["FederationService"].full_name


def instance_event(reason: str) -> common_pb2.InstanceEvent:
    claims = current_claims()
    return common_pb2.InstanceEvent(instance=common_pb2.Instance(tenant=claims.tenant), reason=reason)


class Compute(compute_pb2_grpc.ComputeServiceServicer):
    async def WhoAmI(self, request: Any, context: Any) -> compute_pb2.WhoAmIResponse:
        claims = current_claims()
        await asyncio.sleep(0.01)  # let concurrent calls interleave: claims must not bleed across them
        assert current_claims() is claims
        return compute_pb2.WhoAmIResponse(tenant=claims.tenant, roles=sorted(claims.roles))

    async def WatchInstance(self, request: Any, context: Any) -> AsyncIterator[common_pb2.InstanceEvent]:
        for n in range(3):
            yield instance_event(f"event {n}")
            await asyncio.sleep(0)


class WritingCompute(Compute):
    """The other streaming style grpc.aio supports: a coroutine that writes through the context."""

    async def WatchInstance(self, request: Any, context: Any) -> None:  # type: ignore[override]
        for n in range(3):
            await context.write(instance_event(f"event {n}"))


class Federation(federation_pb2_grpc.FederationServiceServicer):
    async def ListSites(self, request: Any, context: Any) -> federation_pb2.ListSitesResponse:
        return federation_pb2.ListSitesResponse(observed_from="test")


class Site:
    def __init__(self, keys: Path, server: RunningServer) -> None:
        self.keys, self.server = keys, server
        self.target = f"127.0.0.1:{server.port}"

    def token(self, tenant: str = "acme", roles: tuple[str, ...] = ("user",), **kw: Any) -> str:
        kid = kw.pop("kid", "k1")
        args: dict[str, Any] = {"subject": "alice", "ttl_s": 600, "now_s": time.time(), **kw}
        return mint(read_private_key(self.keys, kid), kid, tenant=tenant, roles=roles, **args)


async def start_site(tmp: Path, compute: Compute) -> Site:
    keys = tmp / "keys"
    generate_keypair(keys, "k1")
    ring = KeyRing(keys, check_interval_s=0)  # see rotations at once
    server = await start_server(
        "127.0.0.1:0",
        [lambda s: compute_pb2_grpc.add_ComputeServiceServicer_to_server(compute, s),
         lambda s: federation_pb2_grpc.add_FederationServiceServicer_to_server(Federation(), s)],
        [COMPUTE, FEDERATION],
        interceptors=[AuthInterceptor(ring)],
    )  # fmt: skip
    return Site(keys, server)


@pytest.fixture(scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    running = await start_site(tmp_path_factory.mktemp("auth"), Compute())
    yield running
    await running.server.stop(0)


@pytest.fixture
async def channel(site: Site) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(site.target) as ch:
        yield ch


async def who_am_i(channel: grpc.aio.Channel, token: str | None) -> compute_pb2.WhoAmIResponse:
    metadata = bearer_metadata(token) if token is not None else None
    return await compute_pb2_grpc.ComputeServiceStub(channel).WhoAmI(empty_pb2.Empty(), metadata=metadata)


def spliced(signed: str, other: str) -> str:
    """`signed`'s header and signature around `other`'s payload: a tampered tenant claim."""
    header, _, signature = signed.split(".")
    return f"{header}.{other.split('.')[1]}.{signature}"


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def test_no_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    error = await refused(who_am_i(channel, None))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "missing 'authorization: Bearer <token>'" in (error.details() or "")


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda site: "not-a-token", "malformed token"),
        (lambda site: site.token(now_s=time.time() - 7200), "expired"),
        (lambda site: spliced(site.token("acme"), site.token("victim")), "bad token signature"),
        (lambda site: site.token().replace(".", ". ", 1), "malformed"),
    ],
)
async def test_bad_or_expired_token_is_unauthenticated(
    channel: grpc.aio.Channel, site: Site, make_token: Any, reason: str
) -> None:
    error = await refused(who_am_i(channel, make_token(site)))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert reason in (error.details() or "")


async def test_wrong_scheme_is_unauthenticated(channel: grpc.aio.Channel, site: Site) -> None:
    stub = compute_pb2_grpc.ComputeServiceStub(channel)
    call = stub.WhoAmI(empty_pb2.Empty(), metadata=(("authorization", f"Basic {site.token()}"),))
    assert (await refused(call)).code() is grpc.StatusCode.UNAUTHENTICATED


async def test_who_am_i_returns_the_token_tenant(channel: grpc.aio.Channel, site: Site) -> None:
    reply = await who_am_i(channel, site.token("acme", ("user", "admin")))
    assert (reply.tenant, list(reply.roles)) == ("acme", ["admin", "user"])


async def test_concurrent_calls_see_their_own_claims(channel: grpc.aio.Channel, site: Site) -> None:
    tenants = [f"tenant-{n}" for n in range(20)]
    replies = await asyncio.gather(*(who_am_i(channel, site.token(t)) for t in tenants))
    assert [reply.tenant for reply in replies] == tenants


async def test_federation_needs_admin(channel: grpc.aio.Channel, site: Site) -> None:
    stub = federation_pb2_grpc.FederationServiceStub(channel)
    request = federation_pb2.ListSitesRequest()
    error = await refused(stub.ListSites(request, metadata=bearer_metadata(site.token())))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs role admin" in (error.details() or "")
    error = await refused(stub.ListSites(request))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    admin = site.token("ops", ("admin",))
    reply = await stub.ListSites(request, metadata=bearer_metadata(admin))
    assert (list(reply.sites), reply.observed_from) == ([], "test")


async def test_health_and_reflection_need_no_token(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=COMPUTE))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = [s.name async for r in call for s in r.list_services_response.service]
    assert COMPUTE in names


async def watch(channel: grpc.aio.Channel, token: str | None) -> list[common_pb2.InstanceEvent]:
    metadata = bearer_metadata(token) if token is not None else None
    stub = compute_pb2_grpc.ComputeServiceStub(channel)
    request = compute_pb2.WatchInstanceRequest(name="instances/x")
    return [event async for event in stub.WatchInstance(request, metadata=metadata)]


async def test_stream_handler_sees_claims(channel: grpc.aio.Channel, site: Site) -> None:
    events = await watch(channel, site.token("globex"))
    assert [(e.instance.tenant, e.reason) for e in events] == [("globex", f"event {n}") for n in range(3)]
    error = await refused(watch(channel, None))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_writing_stream_handler_sees_claims(tmp_path: Path) -> None:
    other = await start_site(tmp_path, WritingCompute())
    try:
        async with grpc.aio.insecure_channel(other.target) as ch:
            events = await watch(ch, other.token("initech"))
            assert [e.instance.tenant for e in events] == ["initech"] * 3
            assert (await refused(watch(ch, None))).code() is grpc.StatusCode.UNAUTHENTICATED
    finally:
        await other.server.stop(0)


async def test_client_interceptors_add_the_token(site: Site) -> None:
    interceptors = bearer_interceptors(lambda: site.token("hooli"))
    async with grpc.aio.insecure_channel(site.target, interceptors=interceptors) as ch:
        assert (await who_am_i(ch, None)).tenant == "hooli"
        assert {e.instance.tenant for e in await watch(ch, None)} == {"hooli"}


async def test_rotation_needs_no_restart(tmp_path: Path) -> None:
    site = await start_site(tmp_path, Compute())
    try:
        async with grpc.aio.insecure_channel(site.target) as channel:
            old = site.token("acme", kid="k1")
            generate_keypair(site.keys, "k2")
            assert (await who_am_i(channel, site.token("acme", kid="k2"))).tenant == "acme"
            assert (await who_am_i(channel, old)).tenant == "acme"
            (site.keys / "k1.pub").unlink()
            error = await refused(who_am_i(channel, old))
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "unknown key id 'k1'" in (error.details() or "")
    finally:
        await site.server.stop(0)


GARBAGE = b"\xff\xff\xff\xff\x0f" + b"\x8a" * 64  # not a protobuf message: a truncated varint field


async def raw_call(channel: grpc.aio.Channel, method: str, body: bytes, token: str | None) -> grpc.StatusCode:
    metadata = bearer_metadata(token) if token is not None else None
    if method.endswith("WatchInstance"):
        stream = channel.unary_stream(method)(body, metadata=metadata)
        try:
            async for _ in stream:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK
    try:
        await channel.unary_unary(method)(body, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", ["WhoAmI", "WatchInstance"])
async def test_a_malformed_body_is_refused_by_credentials_first_then_as_invalid(
    channel: grpc.aio.Channel, site: Site, method: str
) -> None:
    full = f"/{COMPUTE}/{method}"
    assert await raw_call(channel, full, GARBAGE, None) is grpc.StatusCode.UNAUTHENTICATED
    assert await raw_call(channel, full, GARBAGE, "not-a-token") is grpc.StatusCode.UNAUTHENTICATED
    assert await raw_call(channel, full, GARBAGE, site.token()) is grpc.StatusCode.INVALID_ARGUMENT
    # A well-formed body still works through the same path.
    ok = (
        empty_pb2.Empty().SerializeToString()
        if method == "WhoAmI"
        else compute_pb2.WatchInstanceRequest().SerializeToString()
    )
    assert await raw_call(channel, full, ok, site.token()) is grpc.StatusCode.OK
