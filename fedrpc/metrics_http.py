"""Serves a process's Prometheus registry over HTTP (/metrics) on its own port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


def serve_metrics(listen: str, registry: CollectorRegistry) -> int:
    """Starts a daemon-thread HTTP server; returns the bound port (listen "host:0" picks a free one)."""
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
    return int(server.server_port)
