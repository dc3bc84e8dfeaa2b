"""mTLS on a real grpc.aio server over 127.0.0.1, with certificates from the project's own PKI: who may
connect (the handshake), who may call what (PeerAuthInterceptor), which server a client accepts (the
server name), and files that rotate under a running server and client."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from cellapi.auth import pki_dir
from fedlib.errors import ConfigError, PermissionDenied, Unauthenticated
from fedlib.pki.identity import Identity, Role
from fedrpc.channel import SecureTarget, open_channel
from fedrpc.dialer import Dialer
from fedrpc.peer_auth import PeerAuthInterceptor, PeerRule
from fedrpc.revocation import RevocationList
from fedrpc.server import RunningServer, start_server
from fedrpc.tls import ClientTls, ReloadingTls, TlsFiles, server_credentials

SERVICE = "cellfed.v1.CellService"  # any service name: the rules match it, the handler is generic
NOW = datetime.now(UTC)


class Pki:
    """A federation root, two regions and leaves, each leaf copied into its own component directory."""

    def __init__(self, root: Path, federation: str = "acme") -> None:
        self.dir, self.root, self.federation = root / federation, root, federation
        pki_dir.init(self.dir, federation, NOW - timedelta(days=3), 30)
        for region in ("eu-west", "us-east"):
            pki_dir.issue_region(self.dir, region, NOW - timedelta(days=3), 20)

    def component(
        self,
        site: str,
        role: Role,
        cid: str = "x1",
        *,
        region: str = "eu-west",
        now: datetime = NOW,
        hours: int = 4,
    ) -> TlsFiles:
        """Issues a leaf and installs it in a directory of its own, as an operator would move it."""
        identity = Identity(self.federation, site, role, cid)
        paths = pki_dir.issue_leaf(self.dir, region, identity, now, hours=hours, dns=(), ips=())
        home = self.root / "homes" / f"{self.federation}-{identity.file_stem}"
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (paths.key, paths.chain, paths.ca):
            _install(path, home / path.name)
        return TlsFiles.issued(home, identity.file_stem, self.federation, role)


def _reloading(files: TlsFiles) -> ReloadingTls:
    return ReloadingTls.start(files, recheck_s=0)  # the tests rotate and look at once


def _client(files: TlsFiles) -> ClientTls:
    return ClientTls(_reloading(files))


def _install(source: Path, target: Path) -> None:
    # Copied then renamed over, as a deployment tool would: the reader sees the old file or the new one.
    temporary = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, temporary)
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)


def _who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    # Answers with the caller's identity and its certificate's serial: what the server saw.
    auth = context.auth_context()
    serial = x509.load_pem_x509_certificate(auth["x509_pem_cert"][0]).serial_number
    spiffe: bytes = auth["peer_spiffe_id"][0]
    return spiffe + b" " + str(serial).encode()


async def _echo_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


def _register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Who": grpc.unary_unary_rpc_method_handler(
                        _who, request_deserializer=bytes, response_serializer=bytes
                    ),
                    "Echo": grpc.stream_stream_rpc_method_handler(_echo_stream),
                },
            ),
        )
    )


async def _serve(
    files: TlsFiles, rules: dict[str, PeerRule], revoked: RevocationList | None = None
) -> tuple[RunningServer, ReloadingTls]:
    tls = _reloading(files)
    interceptor = PeerAuthInterceptor(files.federation, rules, revoked=revoked)
    server = await start_server(
        "127.0.0.1:0",
        [_register],
        [SERVICE],
        interceptors=[interceptor],
        credentials=server_credentials(tls, require_client_cert=True),
    )
    return server, tls


async def _call(port: int, target: SecureTarget, body: bytes = b"hi") -> bytes:
    async with open_channel(f"127.0.0.1:{port}", target) as channel:
        return await _who_call(channel, body)


async def _who_call(channel: grpc.aio.Channel, body: bytes = b"hi") -> bytes:
    method = channel.unary_unary(f"/{SERVICE}/Who", request_serializer=bytes, response_deserializer=bytes)
    result: bytes = await method(body, timeout=5)
    return result


ROUTERS = {SERVICE: PeerRule(frozenset({Role.ROUTER}))}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def test_a_router_of_the_federation_calls_a_cell_and_is_named_by_its_certificate(pki: Pki) -> None:
    server, _ = await _serve(pki.component("par1", Role.CELL, "c1"), ROUTERS)
    router = _client(pki.component("nyc1", Role.ROUTER, "r1", region="us-east"))
    try:
        answer = await _call(server.port, router.target("par1", Role.CELL))
        assert answer.startswith(b"spiffe://acme/site/nyc1/role/router/id/r1 ")
    finally:
        await server.stop(0)


async def test_a_peer_of_a_role_the_service_does_not_serve_is_permission_denied_before_parsing(
    pki: Pki,
) -> None:
    server, _ = await _serve(pki.component("par1", Role.CELL, "c1"), ROUTERS)
    agent = _client(pki.component("par1", Role.AGENT, "h1"))
    try:
        async with open_channel(f"127.0.0.1:{server.port}", agent.target("par1", Role.CELL)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _who_call(channel)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "role/agent" in (err.value.details() or "") and "router only" in (
                err.value.details() or ""
            )
            stream = channel.stream_stream(f"/{SERVICE}/Echo")
            call = stream(iter([b"\xff garbage"]), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in call:
                    pass
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(0)


async def test_a_per_site_rule_refuses_a_peer_of_another_site(pki: Pki) -> None:
    rules = {SERVICE: PeerRule(frozenset({Role.AGENT}), site="par1")}
    server, _ = await _serve(pki.component("par1", Role.CELL, "c1"), rules)
    try:
        here = _client(pki.component("par1", Role.AGENT, "h1"))
        assert (await _call(server.port, here.target("par1", Role.CELL))).startswith(
            b"spiffe://acme/site/par1/"
        )
        there = _client(pki.component("nyc1", Role.AGENT, "h1", region="us-east"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(server.port, there.target("par1", Role.CELL))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "site par1 only" in (
            err.value.details() or ""
        )
    finally:
        await server.stop(0)


async def test_the_handshake_refuses_no_certificate_another_federation_and_an_expired_leaf(
    pki: Pki, tmp_path: Path
) -> None:
    server, _ = await _serve(pki.component("par1", Role.CELL, "c1"), ROUTERS)
    ca = (pki.dir / "ca.crt").read_bytes()
    other = Pki(tmp_path / "other", "evil")
    expired = pki.component("nyc1", Role.ROUTER, "old", now=NOW - timedelta(hours=3), hours=1)
    stranger = other.component("par1", Role.ROUTER, "r1")
    attempts = {
        "no certificate": SecureTarget(grpc.ssl_channel_credentials(root_certificates=ca), "cell.par1.acme"),
        "another federation": SecureTarget(
            grpc.ssl_channel_credentials(ca, stranger.key.read_bytes(), stranger.cert.read_bytes()),
            "cell.par1.acme",
        ),
        "expired": SecureTarget(
            grpc.ssl_channel_credentials(ca, expired.key.read_bytes(), expired.cert.read_bytes()),
            "cell.par1.acme",
        ),
    }
    try:
        for what, target in attempts.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _call(server.port, target)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, what  # no TLS session: nothing was served
    finally:
        await server.stop(0)


async def test_a_client_refuses_a_server_whose_certificate_is_not_the_role_and_site_it_dialed(
    pki: Pki,
) -> None:
    # An agent's certificate on the port a router expects par1's cell on (the same 127.0.0.1): refused.
    server, _ = await _serve(pki.component("par1", Role.AGENT, "h1"), ROUTERS)
    router = _client(pki.component("nyc1", Role.ROUTER, "r1", region="us-east"))
    try:
        for site, role in (("par1", Role.CELL), ("nyc1", Role.AGENT)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _call(server.port, router.target(site, role))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await _call(server.port, router.target("par1", Role.AGENT))  # what it is: accepted
    finally:
        await server.stop(0)


async def test_a_server_serves_rotated_files_to_new_connections_and_keeps_established_ones(pki: Pki) -> None:
    files = pki.component("par1", Role.CELL, "c1")
    server, tls = await _serve(files, ROUTERS)
    router = _client(pki.component("nyc1", Role.ROUTER, "r1", region="us-east"))
    established = open_channel(f"127.0.0.1:{server.port}", router.target("par1", Role.CELL))
    try:
        await _who_call(established)
        # The region's CA rotates; the cell is re-issued under the new one, into the running server's files.
        pki_dir.issue_region(pki.dir, "eu-west", NOW, 20, rotate=True)
        rotated = pki.component("par1", Role.CELL, "c1")
        assert rotated == files
        assert await _call(server.port, router.target("par1", Role.CELL))  # a new connection: new files
        assert tls.generation == 1
        await _who_call(established)  # the old connection lives on
        # Files of another site's cell now: a client dialing par1's cell refuses the new handshakes.
        other = pki.component("par2", Role.CELL, "c1")
        for name in ("key", "chain.pem"):
            _install(
                other.cert.with_name(f"par2-cell-c1.{name}"), files.cert.with_name(f"par1-cell-c1.{name}")
            )
        with pytest.raises(grpc.aio.AioRpcError):
            await _call(server.port, router.target("par1", Role.CELL))
        assert await _call(server.port, router.target("par2", Role.CELL))
    finally:
        await established.close()
        await server.stop(0)


async def test_a_bad_rotation_keeps_the_last_good_files(pki: Pki) -> None:
    files = pki.component("par1", Role.CELL, "c1")
    server, tls = await _serve(files, ROUTERS)
    router = _client(pki.component("nyc1", Role.ROUTER, "r1", region="us-east"))
    try:
        files.cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")  # a half-written chain
        assert await _call(server.port, router.target("par1", Role.CELL))
        stray = pki.component("par1", Role.CELL, "c2")  # a key that is not the chain's
        _install(stray.key, files.key)
        assert await _call(server.port, router.target("par1", Role.CELL))
        assert tls.generation == 0
        pki.component("par1", Role.CELL, "c1")  # the rotation completes
        assert await _call(server.port, router.target("par1", Role.CELL))
        assert tls.generation == 1
    finally:
        await server.stop(0)


async def test_a_client_presents_its_rotated_certificate_on_its_next_channel(pki: Pki) -> None:
    server, _ = await _serve(pki.component("par1", Role.CELL, "c1"), ROUTERS)
    router_files = pki.component("nyc1", Role.ROUTER, "r1", region="us-east")
    router = _client(router_files)
    try:
        first = await _call(server.port, router.target("par1", Role.CELL))
        assert router.generation() == 0
        pki.component("nyc1", Role.ROUTER, "r1", region="us-east")
        assert router.generation() == 1
        second = await _call(server.port, router.target("par1", Role.CELL))
        assert (
            first.split()[0] == second.split()[0] and first.split()[1] != second.split()[1]
        )  # same id, new cert
    finally:
        await server.stop(0)


async def test_a_revoked_certificate_is_refused_on_its_next_call(pki: Pki, tmp_path: Path) -> None:
    revoked_file = tmp_path / "revoked.txt"
    revocations = RevocationList.start(revoked_file)  # missing: nothing revoked
    server, _ = await _serve(pki.component("par1", Role.CELL, "c1"), ROUTERS, revocations)
    router_files = pki.component("nyc1", Role.ROUTER, "r1", region="us-east")
    router = _client(router_files)
    serial = x509.load_pem_x509_certificate(router_files.cert.read_bytes()).serial_number
    try:
        async with open_channel(f"127.0.0.1:{server.port}", router.target("par1", Role.CELL)) as channel:
            await _who_call(channel)
            revoked_file.write_text(f"# leaked on 2026-12-07\n{serial:x}\n")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _who_call(channel)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (
                err.value.details() or ""
            )
            revoked_file.write_text("not-hex\n")  # a bad edit keeps the list it had
            with pytest.raises(grpc.aio.AioRpcError):
                await _who_call(channel)
            revoked_file.write_text("")
            await _who_call(channel)
    finally:
        await server.stop(0)


def test_a_revocation_list_that_does_not_parse_is_refused_at_start_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "revoked.txt"
    path.write_text("ab:cd\n# fine\nzz\n")
    with pytest.raises(ConfigError, match=r"revoked.txt:3: a revoked serial must be hexadecimal"):
        RevocationList.start(path)


def test_a_service_with_no_rule_is_refused() -> None:
    interceptor = PeerAuthInterceptor("acme", ROUTERS)
    auth = {"peer_spiffe_id": [b"spiffe://acme/site/par1/role/router/id/r1"]}
    assert interceptor.authorize(SERVICE, auth).site == "par1"
    with pytest.raises(PermissionDenied, match="not served to peers"):
        interceptor.authorize("cellfed.v1.AgentService", auth)
    with pytest.raises(PermissionDenied, match="not of federation acme"):
        interceptor.authorize(SERVICE, {"peer_spiffe_id": [b"spiffe://evil/site/par1/role/router/id/r1"]})
    for bad in ({}, {"peer_spiffe_id": [b"spiffe://acme/../x"]}, {"peer_spiffe_id": [b"a", b"b"]}):
        with pytest.raises(Unauthenticated):
            interceptor.authorize(SERVICE, bad)


async def test_a_dialer_replaces_its_channel_when_its_certificate_rotates_and_lets_the_old_one_drain(
    pki: Pki,
) -> None:
    server, _ = await _serve(pki.component("par1", Role.CELL, "c1"), ROUTERS)
    router_files = pki.component("nyc1", Role.ROUTER, "r1", region="us-east")
    dialer = Dialer(tls=_client(router_files))
    endpoint = f"127.0.0.1:{server.port}"

    def factory(channel: grpc.aio.Channel) -> Any:  # a stub class in all but name: one callable
        return channel.unary_unary(f"/{SERVICE}/Who")

    def who() -> Any:
        return dialer.stub(factory, endpoint, "par1", Role.CELL)

    try:
        first = who()
        assert who() is first  # reused while nothing changed
        in_flight = first(b"x", timeout=5)
        pki.component("nyc1", Role.ROUTER, "r1", region="us-east")
        second = who()
        assert second is not first
        old, new = await in_flight, await second(b"y", timeout=5)
        assert old.split()[1] != new.split()[1]  # the new channel presents the new certificate
        assert Dialer(tls=None).secure is False and dialer.secure
    finally:
        await dialer.close()
        await server.stop(0)
