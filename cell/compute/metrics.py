"""The compute agent's Prometheus metrics, on its own registry. Labels are bounded (host, call, kind)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fedrpc.build_info import register_build_info


class AgentMetrics:
    def __init__(self, host: str, registry: CollectorRegistry | None = None, *, site: str = "") -> None:
        self.registry = registry or CollectorRegistry()
        self.host = host
        r = self.registry
        register_build_info(r, "agent", site)  # an agent knows its host, not its site: the scrape adds it
        self.libvirt_errors = Counter(
            "cellfed_agent_libvirt_errors_total",
            "libvirt calls that failed, by call.",
            ["host", "call"],
            registry=r,
        )
        self.action_seconds = Histogram(
            "cellfed_agent_action_duration_seconds",
            "Time to carry out one reconcile action (define, start, reboot, stop, destroy...).",
            ["host", "kind"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.domains = Gauge(
            "cellfed_agent_domains",
            "cellfed domains on this host by power state.",
            ["host", "power"],
            registry=r,
        )
        self.drift = Counter(
            "cellfed_agent_reconcile_drift_total",
            "Drift found by reconcile, by kind.",
            ["host", "kind"],
            registry=r,
        )
        self.fences = Counter(
            "cellfed_agent_fences_total",
            "Times the agent powered off its guests because its host lease ended.",
            ["host"],
            registry=r,
        )
        self.lease_held = Gauge(
            "cellfed_agent_lease_held",
            "1 while the agent holds a lease on its host from the controller.",
            ["host"],
            registry=r,
        )
        self.connected = Gauge(
            "cellfed_agent_controller_connected",
            "1 while the stream to the controller is up.",
            ["host"],
            registry=r,
        )
        self.sessions = Counter(
            "cellfed_agent_controller_sessions_total",
            "Streams to the controller opened: the first, each reconnect, each re-issued certificate.",
            ["host"],
            registry=r,
        )
