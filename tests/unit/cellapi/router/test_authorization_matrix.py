"""The authorization matrix, over real gRPC and mTLS in one process (tests.inprocess.harness, tls=True):
every RPC of the public Compute and Federation APIs and of the Cell and Agent APIs, called by every kind
of caller, answers the code this table says. A caller that passes authentication is shown as ALLOWED:
whatever the call then answers (OK, or its own INVALID_ARGUMENT for an empty body), it is not one of
the refusal codes. The table of what went wrong is printed whole on failure."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cellfed.v1 import agent_pb2, agent_pb2_grpc, cell_pb2, compute_pb2, federation_pb2
from google.protobuf import empty_pb2, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from cellapi.auth import generate_keypair, mint, read_private_key
from cellapi.client import Client
from fedlib.errors import CellfedError
from fedlib.pki.identity import Role
from fedrpc.channel import SecureTarget, open_channel
from tests.inprocess.harness import SITES, Harness, cells, create_request
from tests.inprocess.pki import FEDERATION

ALLOWED = "ALLOWED"
REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
NO_SESSION = "NO TLS SESSION"
U, P, N, A, X = "UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND", ALLOWED, NO_SESSION

COMPUTE = compute_pb2.DESCRIPTOR.services_by_name["ComputeService"]
FEDERATION_API = federation_pb2.DESCRIPTOR.services_by_name["FederationService"]
CELL = cell_pb2.DESCRIPTOR.services_by_name["CellService"]
AGENT = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
INSTANCE_SCOPED = {"GetInstance", "DeleteInstance", "StartInstance", "StopInstance", "RebootInstance"}
INSTANCE_SCOPED_STREAM = {"WatchInstance"}

# Callers of the router's public port (TLS, no client certificate asked: a token says who calls).
TOKEN_CALLERS = ("no token", "expired", "unknown key", "tampered", "user", "other tenant", "admin")
# Callers of a cell's mTLS ports, by the certificate they present.
CERT_CALLERS = ("no certificate", "router", "agent of the site", "agent of another site", "operator")


def _public_expected(service: ServiceDescriptor, method: str, caller: str) -> str:
    if caller in ("no token", "expired", "unknown key", "tampered"):
        return U
    if service is FEDERATION_API:
        return A if caller == "admin" else P  # operators' API: the admin role, whatever the tenant
    if caller in ("other tenant", "admin") and method in INSTANCE_SCOPED | INSTANCE_SCOPED_STREAM:
        return N  # another tenant's instance is missing, never "forbidden" (an admin has a tenant too)
    return A


def _cell_expected(service: ServiceDescriptor, caller: str) -> str:
    if caller == "no certificate":
        return X  # the handshake demands one: no session, nothing served
    if service is CELL:
        return A if caller == "router" else P
    return A if caller == "agent of the site" else P


def _message(method: MethodDescriptor) -> type[Message]:
    return message_factory.GetMessageClass(method.input_type)


async def _code(channel: grpc.aio.Channel, service: ServiceDescriptor, method: MethodDescriptor,
                request: Message, metadata: tuple[tuple[str, str], ...]) -> str:  # fmt: skip
    path = f"/{service.full_name}/{method.name}"
    try:
        if method.client_streaming:
            call = channel.stream_stream(path, request_serializer=lambda m: m.SerializeToString())(
                iter([request]), metadata=metadata, timeout=2
            )
            async for _ in call:
                break
        elif method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString())(
                request, metadata=metadata, timeout=2
            )
            async for _ in stream:
                break
        else:
            await channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString())(
                request, metadata=metadata, timeout=2
            )
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.UNAVAILABLE and "failed to connect" in (exc.details() or ""):
            return NO_SESSION  # the handshake was refused: nothing reached a handler
        return exc.code().name
    return "OK"


def _matches(got: str, expected: str) -> bool:
    """ALLOWED: whatever the handler answered, it was not refused and it was reached."""
    if expected == ALLOWED:
        return got not in {code.name for code in REFUSALS} and got != NO_SESSION
    return got == expected


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[raw.index(b"acme") : raw.index(b"acme") + 4] = b"evil"  # another tenant, same signature
    return ".".join((header, base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="), signature))


async def test_every_public_rpc_answers_each_caller_as_the_matrix_says(tmp_path: Path) -> None:
    async with Harness.running(SITES, cells(), routers=["par1"], tls=True) as h:
        assert h.pki is not None
        mine = await h.api("par1").CreateInstance(create_request("matrix"))
        await h.indexed(mine.instance_id, status="ACTIVE")
        stranger_keys = tmp_path / "stranger"
        generate_keypair(stranger_keys, h.key_id)  # the same key id, another key: forged
        forged = mint(read_private_key(stranger_keys, h.key_id), h.key_id, subject="x", tenant="acme",
                      roles=["admin", "user"], ttl_s=3600, now_s=time.time())  # fmt: skip
        tokens = {
            "expired": h.token(issued_s_ago=7200, ttl_s=60),
            "unknown key": forged,
            "tampered": _tampered(h.token()),
            "user": h.token(),
            "other tenant": h.token("other"),
            "admin": h.token("ops", roles=("admin", "user")),
        }
        bodies: dict[str, Callable[[], Message]] = {
            "CreateInstance": lambda: create_request("matrix-again"),
            "WhoAmI": empty_pb2.Empty,
        }
        for name in INSTANCE_SCOPED | INSTANCE_SCOPED_STREAM:
            bodies[name] = lambda name=name: _message(COMPUTE.methods_by_name[name])(name=mine.name)
        credentials = grpc.ssl_channel_credentials(root_certificates=h.pki.ca_pem)
        target = SecureTarget(credentials, f"router.par1.{FEDERATION}")
        wrong: list[str] = []
        async with open_channel(f"127.0.0.1:{h.routers['par1'].port}", target) as channel:
            for service in (COMPUTE, FEDERATION_API):
                for method in service.methods:
                    for caller in TOKEN_CALLERS:
                        token = tokens.get(caller)
                        metadata = () if token is None else (("authorization", f"Bearer {token}"),)
                        body = bodies.get(method.name, _message(method))()
                        got = await _code(channel, service, method, body, metadata)
                        expected = _public_expected(service, method.name, caller)
                        if not _matches(got, expected):
                            wrong.append(f"{method.name} by {caller}: {got}, expected {expected}")
        assert not wrong, "\n".join(wrong)


async def test_every_cell_and_agent_rpc_answers_each_certificate_as_the_matrix_says() -> None:
    async with Harness.running(SITES, cells(), routers=["par1"], tls=True) as h:
        assert h.pki is not None
        par1 = h.cells["par1-c1"]
        assert par1.running is not None
        certificates: dict[str, Any] = {
            "router": h.pki.client("us-east", "nyc1", Role.ROUTER, "matrix"),
            "agent of the site": h.pki.client("eu-west", "par1", Role.AGENT, "matrix"),
            "agent of another site": h.pki.client("us-east", "nyc1", Role.AGENT, "matrix"),
            "operator": h.pki.client("eu-west", "par1", Role.OPERATOR, "matrix"),
        }
        ca_only = grpc.ssl_channel_credentials(root_certificates=h.pki.ca_pem)
        wrong: list[str] = []
        ports = {CELL: par1.running.port, AGENT: par1.running.agent_port}
        for service, port in ports.items():
            for caller in CERT_CALLERS:
                client = certificates.get(caller)
                target = (
                    SecureTarget(ca_only, f"cell.par1.{FEDERATION}")
                    if client is None
                    else client.target("par1", Role.CELL)
                )
                async with open_channel(f"127.0.0.1:{port}", target) as channel:
                    for method in service.methods:
                        body = _message(method)()
                        if service is AGENT:  # as the host its certificate names
                            body = agent_pb2.AgentMessage(hello=agent_pb2.AgentHello(host="matrix"))
                        got = await _code(channel, service, method, body, ())
                        expected = _cell_expected(service, caller)
                        if not _matches(got, expected):
                            wrong.append(
                                f"{service.name}.{method.name} by {caller}: {got}, expected {expected}"
                            )
        assert not wrong, "\n".join(wrong)


async def test_an_agent_may_connect_only_as_the_host_its_certificate_names() -> None:
    async with Harness.running(SITES, cells(), routers=["par1"], tls=True) as h:
        assert h.pki is not None
        par1 = h.cells["par1-c1"]
        assert par1.running is not None
        agent = h.pki.client("eu-west", "par1", Role.AGENT, "par1-c1-h9")
        async with open_channel(
            f"127.0.0.1:{par1.running.agent_port}", agent.target("par1", Role.CELL)
        ) as ch:
            victim = next(iter(par1.agents))  # a real host of this cell, connected
            call = agent_pb2_grpc.AgentServiceStub(ch).Connect(timeout=3)
            await call.write(agent_pb2.AgentMessage(hello=agent_pb2.AgentHello(host=victim)))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call.read()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "may connect as host par1-c1-h9 only" in (err.value.details() or "")
        statuses = {host.host: host.up for host in (await par1.status()).hosts}
        assert statuses[victim] is True  # the real host kept its session


async def test_an_admin_port_serves_operators_only_and_the_public_port_no_longer_serves_them() -> None:
    async with Harness.running(SITES, cells(), routers=["par1"], tls=True, admin_port=True) as h:
        assert h.pki is not None
        router = h.routers["par1"]
        assert router.admin_port is not None
        admin_token = h.token("ops", roles=("admin", "user"))
        ca = h.pki.ca_pem

        def client(port: int, identity: tuple[bytes, bytes] | None, token: str = admin_token) -> Client:
            return Client([f"127.0.0.1:{port}"], token, ca=ca, identity=identity, timeout_s=3)

        def identity_of(role: Role) -> tuple[bytes, bytes]:
            files = h.pki.component("eu-west", "par1", role, "matrix").files  # type: ignore[union-attr]
            return files.cert.read_bytes(), files.key.read_bytes()

        operator = identity_of(Role.OPERATOR)
        outcomes = {}
        cases = {
            "operator cert + admin token, admin port": (router.admin_port, operator, admin_token),
            "operator cert + user token, admin port": (router.admin_port, operator, h.token("ops")),
            "router cert + admin token, admin port": (
                router.admin_port,
                identity_of(Role.ROUTER),
                admin_token,
            ),
            "no cert + admin token, admin port": (router.admin_port, None, admin_token),
            "admin token, public port": (router.port, None, admin_token),
        }
        for what, (port, identity, token) in cases.items():
            c = client(port, identity, token)
            try:
                await c.sites()
                outcomes[what] = "OK"
            except CellfedError as exc:
                outcomes[what] = exc.rpc_code.name if exc.rpc_code is not None else type(exc).__name__
            finally:
                await c.close()
        assert outcomes == {
            "operator cert + admin token, admin port": "OK",
            "operator cert + user token, admin port": "PERMISSION_DENIED",  # the token's role still counts
            "router cert + admin token, admin port": "PERMISSION_DENIED",  # operators' certificates only
            "no cert + admin token, admin port": "UNAVAILABLE",  # no TLS session without a certificate
            "admin token, public port": "UNIMPLEMENTED",  # the Federation API moved to the admin port
        }, outcomes
        user = client(router.port, None, h.token())
        try:
            assert (await user.create(create_request("still-served"))).instance_id  # Compute stays public
        finally:
            await user.close()
