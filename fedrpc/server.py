"""Server bootstrap shared by every process: grpc.aio server with message size limits, grpc.health.v1,
server reflection, and graceful stop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fedrpc.handler_shapes import ParseInside

log = logging.getLogger(__name__)

# Requests are small (user data <= 64 KiB); refuse anything far larger before it is parsed.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

Registrar = Callable[[grpc.aio.Server], None]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int

    async def set_serving(self, service: str = "", serving: bool = True) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(service, status)

    async def stop(self, grace_s: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_server(
    listen: str,
    registrars: Iterable[Registrar],
    service_names: Iterable[str],
    *,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> RunningServer:
    """Starts serving on `listen` ("host:port"; port 0 picks a free one) and marks every service SERVING;
    with `credentials` (fedrpc.tls.server_credentials) the port speaks TLS only."""
    server = grpc.aio.server(
        # Innermost, so whatever authenticates (outside it) runs before a body is parsed.
        interceptors=[*interceptors, ParseInside()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Clients keep long-lived streams alive with pings every 10 s (fedrpc.channel): allow them.
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    for register in registrars:
        register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = (
        server.add_insecure_port(listen)
        if credentials is None
        else server.add_secure_port(listen, credentials)
    )
    if port == 0:
        raise OSError(f"cannot listen on {listen}: address in use or invalid")
    await server.start()
    running = RunningServer(server, health_servicer, port)
    for name in ["", *names]:
        await running.set_serving(name)
    log.info("serving %s on port %d", ", ".join(names), port)
    return running
