"""A router's configuration, parsed once (cellapi.router.main) and passed down frozen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class RouterSettings:
    router_id: str
    site_id: str
    region: str  # = the site's Cassandra DC
    lat: float
    lon: float
    advertise: str  # host:port peers and clients dial
    heartbeat_s: float = 2.0
    refresh_s: float = 2.0  # how often the directory (sites, cells, capacity, routers) is re-read
    probe_s: float = 1.0
    probe_timeout_s: float = 1.0
    cell_timeout_s: float = 5.0  # any single forwarded call
    enrich_timeout_s: float = 0.5  # per-cell deadline when listing: a dead cell never delays a list more
    capacity_max_age_s: float = 30.0  # an older summary is not trusted for placement
    idempotency_ttl_s: int = 24 * 3600
    unknown_grace_s: float = 10.0  # index data older than this reads as UNKNOWN when the owner is away
    traffic_window_s: float = 30.0  # the window of the request/error rates and p99 each report carries
    # endpoint -> the address to dial instead: a NAT or tunnel in production, the WAN-emulating delay
    # proxies of the local federation (localfed.wan_proxy).
    dial: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def dial_address(self, endpoint: str) -> str:
        return self.dial.get(endpoint, endpoint)
