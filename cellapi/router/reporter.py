"""Publishes this router's report with every heartbeat: its own traffic over the last window (from its
Prometheus counters, summarised by the pure cellapi.router.traffic) and the RTT it measures to every
site. Peers read these from their own DC, so the federation view shows every site's traffic and the
whole RTT matrix without asking any router across the WAN (cellapi.router.federation)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from cellapi.router import traffic
from cellapi.router.metrics import RouterMetrics
from cellapi.router.settings import RouterSettings
from replication.model import RouterReport
from replication.store import RouterMembership


def read_sample(metrics: RouterMetrics, at_ms: int) -> traffic.Sample:
    """The router's cumulative request counts and latency histogram, summed over methods."""
    requests = errors = 0.0
    for family in metrics.requests.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                requests += s.value
                errors += s.value if s.labels.get("code") != "OK" else 0.0
    buckets: dict[float, float] = {}
    for family in metrics.request_duration.collect():
        for s in family.samples:
            if s.name.endswith("_bucket"):
                le = math.inf if s.labels["le"] == "+Inf" else float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    if not buckets:  # no request yet: an empty histogram of the same shape
        buckets = {math.inf: 0.0}
    return traffic.Sample(at_ms, requests, errors, tuple(sorted(buckets.items())))


class Reporter:
    def __init__(
        self,
        settings: RouterSettings,
        routers: RouterMembership,
        metrics: RouterMetrics,
        rtt_by_site: Callable[[], Mapping[str, float]],
        clock_ms: Callable[[], int],
    ) -> None:
        self._settings, self._routers, self._metrics = settings, routers, metrics
        self._rtt_by_site, self._now = rtt_by_site, clock_ms
        self._window_ms = int(settings.traffic_window_s * 1000)
        self._samples: tuple[traffic.Sample, ...] = (read_sample(metrics, clock_ms()),)

    def current(self) -> RouterReport:
        """Takes a sample and answers the report for now (without publishing it)."""
        now = self._now()
        self._samples = traffic.keep_window(self._samples, read_sample(self._metrics, now), self._window_ms)
        t = traffic.summary(self._samples) or traffic.Traffic(1, 0.0, 0.0, None)
        return RouterReport(
            router_id=self._settings.router_id,
            site_id=self._settings.site_id,
            reported_at_ms=now,
            window_ms=t.window_ms,
            requests_per_second=t.requests_per_second,
            errors_per_second=t.errors_per_second,
            p99_latency_ms=t.p99_ms,
            rtt_ms=dict(self._rtt_by_site()),
        )

    async def publish(self) -> None:
        await self._routers.publish_report(self.current())
