"""The router's Prometheus metrics, on its own registry. Labels are bounded: method, code, site, target
site, outcome, peer; never instance ids or tenants."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fedrpc.build_info import register_build_info

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RouterMetrics:
    def __init__(self, site: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.site = site
        r = self.registry
        register_build_info(r, "router", site)
        self.requests = Counter(
            "cellfed_router_requests_total",
            "Public API requests by method and status code.",
            ["site", "method", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "cellfed_router_request_duration_seconds",
            "Public and operator API requests, from arrival to answer, by method.",
            ["site", "method"],
            buckets=_LATENCY,
            registry=r,
        )
        self.forwarded = Histogram(
            "cellfed_router_forward_duration_seconds",
            "Calls from this router to a cell, by target site, method and code.",
            ["site", "target_site", "method", "code"],
            buckets=_LATENCY,
            registry=r,
        )
        self.routing = Counter(
            "cellfed_router_routing_outcomes_total",
            "Creates by outcome: local, remote (nearest was another site), spilled (a refusal moved it on), "
            "refused (no cell took it).",
            ["site", "outcome"],
            registry=r,
        )
        self.probe_rtt = Gauge(
            "cellfed_router_probe_rtt_seconds",
            "EWMA of health-probe round trips.",
            ["site", "peer"],
            registry=r,
        )
        self.index_cache = Counter(
            "cellfed_router_owner_lookups_total",
            "How the owner of an instance was found: id (encoded home cell), cache, index.",
            ["site", "source"],
            registry=r,
        )
        self.unreachable = Counter(
            "cellfed_router_list_unreachable_cells_total",
            "Cells that did not answer a listing's enrichment within its deadline.",
            ["site", "target_site"],
            registry=r,
        )
