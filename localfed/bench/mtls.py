"""`cellfed bench mtls`: what mTLS costs on one gRPC link, and how long a rotation takes to be served.

One loopback server and client, the product's own plumbing (fedrpc.server, fedrpc.tls, fedrpc.peer_auth,
certificates from localfed.pki), in three modes measured side by side in one run:
- plaintext: what every link was before;
- tls: server TLS only (a user calling a router);
- mtls: client certificates, the peer authorization interceptor on every call (router -> cell).
Figures: a new connection's first answer (TCP + handshake + one call), a warm channel's unary call, and
for mtls the time from rewriting the server's files to the first new connection served the new leaf.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import grpc

from fedlib.pki.identity import Identity, Role
from fedrpc.channel import SecureTarget, open_channel
from fedrpc.peer_auth import PeerAuthInterceptor, PeerRule
from fedrpc.server import RunningServer, start_server
from fedrpc.tls import ClientTls, ReloadingTls, TlsFiles, server_credentials
from localfed.pki import LocalPki, leaf_on_disk, served_leaf

SERVICE = "cellfed.bench.Echo"
FEDERATION = "bench"
MODES = ("plaintext", "tls", "mtls")


def _register(server: grpc.aio.Server) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler}),))


async def _server(mode: str, tls: ReloadingTls) -> RunningServer:
    if mode == "plaintext":
        return await start_server("127.0.0.1:0", [_register], [SERVICE])
    if mode == "tls":
        credentials = server_credentials(tls, require_client_cert=False)
        return await start_server("127.0.0.1:0", [_register], [SERVICE], credentials=credentials)
    rules = {SERVICE: PeerRule(frozenset({Role.ROUTER}))}
    return await start_server(
        "127.0.0.1:0", [_register], [SERVICE],
        interceptors=[PeerAuthInterceptor(FEDERATION, rules)],
        credentials=server_credentials(tls, require_client_cert=True),
    )  # fmt: skip


def _target(mode: str, client: ClientTls, ca: bytes) -> SecureTarget | None:
    if mode == "plaintext":
        return None
    if mode == "tls":
        return SecureTarget(grpc.ssl_channel_credentials(root_certificates=ca), f"cell.par1.{FEDERATION}")
    return client.target("par1", Role.CELL)


async def _call(channel: grpc.aio.Channel) -> None:
    await channel.unary_unary(f"/{SERVICE}/Echo")(b"x" * 64, timeout=5)


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


async def _measure(mode: str, tls: ReloadingTls, client: ClientTls, ca: bytes, connections: int, calls: int
                   ) -> dict[str, Any]:  # fmt: skip
    server = await _server(mode, tls)
    address = f"127.0.0.1:{server.port}"
    try:
        first: list[float] = []
        for _ in range(connections):
            started = time.perf_counter()
            async with open_channel(address, _target(mode, client, ca)) as channel:
                await _call(channel)
                first.append(time.perf_counter() - started)
        warm: list[float] = []
        async with open_channel(address, _target(mode, client, ca)) as channel:
            await _call(channel)
            for _ in range(calls):
                started = time.perf_counter()
                await _call(channel)
                warm.append(time.perf_counter() - started)
        return {"new_connection": _ms(first), "warm_call": _ms(warm)}
    finally:
        await server.stop(0)


async def _rotation(pki: LocalPki, tls: ReloadingTls, client_files: TlsFiles) -> float:
    """Seconds from re-issuing the server's files to a new connection being served the new leaf."""
    server = await _server("mtls", tls)
    try:
        await asyncio.to_thread(served_leaf, server.port, client_files)  # warm: the old leaf
        started = time.perf_counter()
        files = pki.issue("eu-west", Identity(FEDERATION, "par1", Role.CELL, "c1"))
        new = leaf_on_disk(files)
        for _ in range(1000):  # looks every 10 ms, for 10 s at most
            if await asyncio.to_thread(served_leaf, server.port, client_files) == new:
                return time.perf_counter() - started
            await asyncio.sleep(0.01)
        raise TimeoutError("the server never served its re-issued certificate")
    finally:
        await server.stop(0)


async def run(connections: int, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cellfed-bench-mtls-") as tmp:
        pki = LocalPki(Path(tmp), FEDERATION, {"eu-west"})
        server_tls = ReloadingTls.start(pki.issue("eu-west", Identity(FEDERATION, "par1", Role.CELL, "c1")))
        client_files = pki.issue("eu-west", Identity(FEDERATION, "par1", Role.ROUTER, "r1"))
        client = ClientTls(ReloadingTls.start(client_files))
        figures: dict[str, Any] = {}
        for mode in MODES:
            figures[mode] = await _measure(mode, server_tls, client, pki.ca_pem, connections, calls)
        base = figures["plaintext"]
        for mode in MODES[1:]:
            for what in ("new_connection", "warm_call"):
                figures[mode][what]["x_plaintext_p50"] = round(
                    figures[mode][what]["p50_ms"] / base[what]["p50_ms"], 2
                )
        figures["rotation_s"] = round(await _rotation(pki, server_tls, client_files), 3)
        return figures


@click.command("mtls")
@click.option("--connections", default=60, show_default=True, help="New connections per mode.")
@click.option("--calls", default=2000, show_default=True, help="Warm calls per mode.")
@click.option("--json", "as_json", is_flag=True)
def mtls(connections: int, calls: int, as_json: bool) -> None:
    """The cost of mTLS on one loopback gRPC link, plaintext vs TLS vs mTLS, and rotation time."""
    figures = asyncio.run(run(connections, calls))
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(
        f"{'mode':<10} {'new connection p50/p99 ms':>28} {'warm call p50/p99 ms':>24} {'x plaintext':>14}"
    )
    for mode in MODES:
        f = figures[mode]
        ratio = (
            ""
            if mode == "plaintext"
            else (f"{f['new_connection']['x_plaintext_p50']} / {f['warm_call']['x_plaintext_p50']}")
        )
        click.echo(
            f"{mode:<10} {f['new_connection']['p50_ms']:>14} / {f['new_connection']['p99_ms']:<11}"
            f" {f['warm_call']['p50_ms']:>10} / {f['warm_call']['p99_ms']:<11} {ratio:>14}"
        )
    click.echo(
        f"rotation: a new connection served the re-issued leaf {figures['rotation_s']} s after the write"
    )
