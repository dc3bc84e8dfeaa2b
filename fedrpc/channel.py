"""Client channels with keepalive and size limits; every call site still passes its own deadline."""

from __future__ import annotations

import grpc

from fedrpc.server import MAX_MESSAGE_BYTES


def open_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[
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
        ],
    )
