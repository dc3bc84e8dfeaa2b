"""The cell controller's Prometheus metrics, on a registry of its own (several controllers can live in one
test process). Labels are bounded: cell, host, status, method, code; never instance ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fedrpc.build_info import register_build_info

_BUILD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_FAST_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1)


class CellMetrics:
    def __init__(self, cell: str, registry: CollectorRegistry | None = None, *, site: str = "") -> None:
        self.registry = registry or CollectorRegistry()
        self.cell = cell
        r = self.registry
        register_build_info(r, "cell", site)
        self.build_seconds = Histogram(
            "cellfed_cell_build_duration_seconds",
            "Time from build request to ACTIVE or ERROR.",
            ["cell", "outcome"],
            buckets=_BUILD_BUCKETS,
            registry=r,
        )
        self.placement_seconds = Histogram(
            "cellfed_cell_placement_decision_seconds",
            "Time to choose a host and claim its capacity.",
            ["cell"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.instances = Gauge(
            "cellfed_cell_instances", "Instances by status.", ["cell", "status"], registry=r
        )
        self.vcpus = Gauge("cellfed_cell_capacity_vcpus", "vCPUs by state.", ["cell", "state"], registry=r)
        self.memory = Gauge(
            "cellfed_cell_capacity_memory_bytes", "Memory by state.", ["cell", "state"], registry=r
        )
        self.disk = Gauge("cellfed_cell_capacity_disk_bytes", "Disk by state.", ["cell", "state"], registry=r)
        self.hosts_up = Gauge(
            "cellfed_cell_hosts_up", "Compute hosts with a fresh heartbeat.", ["cell"], registry=r
        )
        self.addresses_free = Gauge(
            "cellfed_cell_network_addresses_free",
            "IPv4 addresses a build could get now, per provider network (not held, not in quarantine).",
            ["cell", "network"],
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "cellfed_cell_agent_heartbeat_age_seconds",
            "Age of each compute agent's last heartbeat.",
            ["cell", "host"],
            registry=r,
        )
        self.requests = Counter(
            "cellfed_cell_requests_total",
            "Cell API requests by method and code.",
            ["cell", "method", "code"],
            registry=r,
        )
        self.publish_errors = Counter(
            "cellfed_cell_publish_errors_total",
            "Failed writes of index rows or capacity to the global keyspace (retried).",
            ["cell", "what"],
            registry=r,
        )
        self.reassert_rows = Counter(
            "cellfed_cell_reassert_rows_total",
            "Index and listing rows written again by the full re-assert sweep.",
            ["cell"],
            registry=r,
        )
        self.reassert_bytes = Counter(
            "cellfed_cell_reassert_bytes_total",
            "Payload bytes (values) written again by the full re-assert sweep.",
            ["cell"],
            registry=r,
        )
        self.reassert_sweep_seconds = Histogram(
            "cellfed_cell_reassert_sweep_duration_seconds",
            "Time one re-assert sweep took to visit every live instance.",
            ["cell"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
            registry=r,
        )
        self.claims_reasserted = Counter(
            "cellfed_cell_request_claims_reasserted_total",
            "Idempotency claims this cell wrote again because its DC lacked them (cell.request_claims).",
            ["cell"],
            registry=r,
        )
        self.duplicates_removed = Counter(
            "cellfed_cell_request_duplicates_removed_total",
            "Instances removed because an older claim of the same request id won (cell.request_claims).",
            ["cell"],
            registry=r,
        )
        self.agent_errors = Counter(
            "cellfed_cell_agent_failures_total",
            "Reconcile failures compute agents reported that moved an instance to ERROR, by libvirt call.",
            ["cell", "call"],
            registry=r,
        )
