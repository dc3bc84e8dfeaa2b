"""Client channels with keepalive and size limits; every call site still passes its own deadline."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from fedrpc.server import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class SecureTarget:
    """TLS for one channel: the credentials, and the name the server's certificate must carry (checked
    instead of the dialed host, which is often an address every component of a host shares)."""

    credentials: grpc.ChannelCredentials
    server_name: str | None = None  # None: the dialed host, as a user's client checks a public name
    generation: int = 0  # of the files the credentials were made from (fedrpc.tls)


_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Detect a dead peer on an idle long-lived stream (agent <-> controller) within seconds.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Fail fast on a dead target instead of queueing while reconnecting.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


def open_channel(target: str, secure: SecureTarget | None = None) -> grpc.aio.Channel:
    if secure is None:
        return grpc.aio.insecure_channel(target, options=_OPTIONS)
    options = list(_OPTIONS)
    if secure.server_name is not None:
        options.append(("grpc.ssl_target_name_override", secure.server_name))
    return grpc.aio.secure_channel(target, secure.credentials, options=options)
