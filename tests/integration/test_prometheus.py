"""A real Prometheus (localfed.prometheus) over a real federation (tests/federation_harness.py) while
clients use every router: every target is up and labelled with its site and region, and the recording
rules give one plausible series per site (request rate, error ratio, capacity) or per pair of sites
(forward latency, which follows the emulated WAN RTTs)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cellapi.client import Client
from fedlib.errors import CellfedError
from fedrpc.build_info import cellfed_version
from localfed.prometheus import (
    CONFIG_FILE,
    PrometheusProcess,
    Series,
    recording_rules,
    start_prometheus,
    targets_of,
)
from tests.federation_harness import SITES, Federation, running_federation
from tests.integration.test_metrics_lint import PROMTOOL
from tests.integration.test_routers import create_request

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]

WAIT_S = 60.0  # scrapes every 2s, rules over 30s windows
W = "30s"


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(
        tmp_path_factory.mktemp("federation"), cassandra_cluster.contact_points
    ) as f:
        yield f


@pytest.fixture(scope="module")
def prometheus(fed: Federation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), targets_of(fed))
    try:
        yield prom
    finally:
        prom.stop()


@pytest.fixture(scope="module")
async def traffic(fed: Federation, prometheus: PrometheusProcess) -> AsyncIterator[None]:
    """One instance per site, then, until the module ends, every router gets every instance twice (local
    and forwarded calls) and, in every cell, one that does not exist: NOT_FOUND, so the error ratio is
    1/3, and every router forwards to every site wherever placement put the instances."""
    clients = {s.site: fed.client(s.site) for s in SITES}
    created = [await clients[s.site].create(create_request(f"prom-{s.site}")) for s in SITES]

    async def loop() -> None:
        while True:
            for site in SITES:
                client = clients[site.site]
                for inst in created * 2:
                    await client.get(inst.instance_id)
                for other in SITES:
                    with contextlib.suppress(CellfedError):
                        await client.get(f"{other.cell}.00000000000000000000000000")
            await asyncio.sleep(0.5)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for inst in created:
            await clients[SITES[0].site].action("Delete", inst.instance_id)
        for client in clients.values():
            await client.close()


async def until(
    prom: PrometheusProcess, promql: str, ok: Callable[[list[Series]], bool], timeout_s: float = WAIT_S
) -> list[Series]:
    """Polls `promql` until `ok(result)`; fails with the last result when the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await asyncio.to_thread(prom.query, promql)
        if ok(result):
            return result
        assert time.monotonic() < deadline, f"{promql} -> {result}"
        await asyncio.sleep(1.0)


def by_site(result: list[Series]) -> dict[str, float]:
    sites = [s.labels.get("site") for s in result]
    assert len(sites) == len(set(sites)), f"more than one series per site: {result}"
    return {str(s): r.value for s, r in zip(sites, result, strict=True)}


def one_per_site(result: list[Series]) -> bool:
    return sorted(str(r.labels.get("site")) for r in result) == sorted(s.site for s in SITES)


async def test_every_target_is_up_with_its_site_and_region(
    fed: Federation, prometheus: PrometheusProcess
) -> None:
    targets = targets_of(fed)
    result = await until(prometheus, "up", lambda r: len(r) == len(targets) and all(s.value == 1 for s in r))
    seen = {(s.labels["job"], s.labels["site"], s.labels["region"], s.labels["instance"]) for s in result}
    assert seen == {(t.job, t.site, t.region, t.address) for t in targets}
    regions = {s.site: s.region for s in SITES}
    assert all(regions[s.labels["site"]] == s.labels["region"] for s in result)


async def test_build_info_one_series_per_site(prometheus: PrometheusProcess) -> None:
    result = await until(prometheus, "sum by (site) (cellfed_build_info)", one_per_site)
    # A router, a cell controller and its agents per site: the scrape gave the cell and agents a site.
    assert by_site(result) == {s.site: 2 + s.hosts for s in SITES}
    versions = await asyncio.to_thread(prometheus.query, "count by (version) (cellfed_build_info)")
    assert [s.labels["version"] for s in versions] == [cellfed_version()]
    components = await asyncio.to_thread(prometheus.query, "count by (site, component) (cellfed_build_info)")
    assert {(s.labels["site"], s.labels["component"]) for s in components} == {
        (s.site, c) for s in SITES for c in ("router", "cell", "agent")
    }


async def test_created_series_are_not_stored(prometheus: PrometheusProcess) -> None:
    await until(prometheus, "cellfed_router_requests_total", lambda r: len(r) > 0)
    assert await asyncio.to_thread(prometheus.query, '{__name__=~"cellfed_.+_created"}') == []


async def test_request_rate_rule_per_site(prometheus: PrometheusProcess, traffic: None) -> None:
    query = f"site:cellfed_router_requests:rate{W}"
    # Each round (a sleep of 0.5s and a few WAN round trips) makes nine requests per router: once the
    # 30s window is full of traffic, well above 0.5/s and well below 1000/s.
    result = await until(prometheus, query, lambda r: one_per_site(r) and all(s.value > 0.5 for s in r))
    assert all(v < 1000 for v in by_site(result).values()), result


async def test_error_ratio_rule_per_site(prometheus: PrometheusProcess, traffic: None) -> None:
    query = f"site:cellfed_router_request_errors:ratio_rate{W}"
    # One miss in every three gets, once the window holds nothing but this traffic.
    await until(prometheus, query, lambda r: one_per_site(r) and all(0.25 < s.value < 0.4 for s in r))


async def test_request_p99_rule_per_site(prometheus: PrometheusProcess, traffic: None) -> None:
    query = f"site:cellfed_router_request_duration_seconds:p99_rate{W}"
    result = await until(prometheus, query, lambda r: one_per_site(r) and all(0 < s.value < 5 for s in r))
    # Forwarded gets cross the emulated WAN (the farthest pair is ~90 ms each way here): the p99 of
    # every router's requests is at least a WAN round trip, within a bucket (2.5x).
    assert all(v >= 0.05 / 2.5 for v in by_site(result).values()), result


async def test_the_federation_view_agrees_with_prometheus(
    fed: Federation, prometheus: PrometheusProcess, traffic: None
) -> None:
    """The routers' published traffic (cellctl sites/top, the status page) and the recording rules are
    computed from the same counters over the same 30 s window: they must tell the same story."""
    rate = f"site:cellfed_router_requests:rate{W}"
    p99 = f"site:cellfed_router_request_duration_seconds:p99_rate{W}"
    admin = Client([fed.router(SITES[0].site)], fed.tokens["admin"], timeout_s=5)
    deadline = time.monotonic() + WAIT_S
    try:
        while True:  # until both windows hold only the steady traffic (or the time is up)
            view = {s.site: s.traffic for s in (await admin.sites()).sites}
            prom_rate = by_site(await asyncio.to_thread(prometheus.query, rate))
            prom_p99 = by_site(await asyncio.to_thread(prometheus.query, p99))
            problems = _disagreements(view, prom_rate, prom_p99)
            if not problems or time.monotonic() > deadline:
                break
            await asyncio.sleep(2.0)
    finally:
        await admin.close()
    assert not problems, problems


def _disagreements(
    view: dict[str, Any], prom_rate: dict[str, float], prom_p99: dict[str, float]
) -> list[str]:
    out = []
    for site in SITES:
        t, name = view[site.site], site.site
        if name not in prom_rate or name not in prom_p99 or not t.requests_per_second:
            out.append(f"{name}: missing ({t}, {prom_rate}, {prom_p99})")
            continue
        if not 0.5 <= t.requests_per_second / prom_rate[name] <= 2.0:
            out.append(
                f"{name}: {t.requests_per_second:.2f} req/s in the view, {prom_rate[name]:.2f} in Prometheus"
            )
        if not 0.25 < t.errors_per_second / t.requests_per_second < 0.4:  # one miss in three gets
            out.append(f"{name}: error ratio {t.errors_per_second / t.requests_per_second:.2f} in the view")
        view_p99 = t.p99_latency.ToMicroseconds() / 1e6
        if not prom_p99[name] / 2.5 <= view_p99 <= prom_p99[name] * 2.5:  # within a bucket
            out.append(f"{name}: p99 {view_p99:.3f} s in the view, {prom_p99[name]:.3f} s in Prometheus")
    return out


async def test_forward_latency_p99_follows_the_wan(
    fed: Federation, prometheus: PrometheusProcess, traffic: None
) -> None:
    query = f"site_target_site:cellfed_router_forward_duration_seconds:p99_rate{W}"
    pairs = {(a.site, b.site) for a in SITES for b in SITES}
    result = await until(
        prometheus,
        query,
        lambda r: {(s.labels["site"], s.labels["target_site"]) for s in r if s.value == s.value} == pairs,
    )
    p99 = {(s.labels["site"], s.labels["target_site"]): s.value for s in result}
    for (a, b), seconds in p99.items():
        if a == b:
            continue
        rtt_s = fed.rtt[(a, b)] / 1000
        # A call takes at least the RTT; a histogram quantile lands no lower than its bucket's lower
        # bound, at worst 2.5x below (the bucket ratio).
        assert rtt_s / 2.5 <= seconds < 5, (a, b, rtt_s, seconds)
    assert all(p99[(s.site, s.site)] < 5 for s in SITES), p99
    # The tail of a few dozen calls may be one slow local call; the median follows the WAN.
    median = {
        (s.labels["site"], s.labels["target_site"]): s.value
        for s in await asyncio.to_thread(
            prometheus.query,
            "histogram_quantile(0.5, sum by (site, target_site, le) "
            f"(rate(cellfed_router_forward_duration_seconds_bucket[{W}])))",
        )
    }
    for a, b in pairs - {(s.site, s.site) for s in SITES}:
        assert median[(a, b)] > median[(a, a)], f"{a}->{b} is no slower than {a}'s own cell: {median}"


async def test_capacity_and_hosts_per_site(prometheus: PrometheusProcess, traffic: None) -> None:
    free = await until(
        prometheus,
        'site_state:cellfed_cell_capacity_vcpus:sum{state="free"}',
        lambda r: one_per_site(r) and all(s.value > 0 for s in r),
    )
    total = by_site(
        await asyncio.to_thread(prometheus.query, 'site_state:cellfed_cell_capacity_vcpus:sum{state="total"}')
    )
    # Schedulable vCPUs: the physical ones times the default allocation ratio (cell.placement, 4.0).
    assert total == {s.site: 4 * s.vcpus * s.hosts for s in SITES}
    assert all(0 < v <= total[site] for site, v in by_site(free).items()), free
    memory = by_site(
        await asyncio.to_thread(
            prometheus.query, 'site_state:cellfed_cell_capacity_memory_bytes:sum{state="total"}'
        )
    )
    assert memory == {s.site: s.memory_mb * s.hosts * 2**20 for s in SITES}
    ratio = await asyncio.to_thread(prometheus.query, "site_resource:cellfed_cell_capacity_free:ratio")
    assert {(s.labels["site"], s.labels["resource"]) for s in ratio} == {
        (s.site, r) for s in SITES for r in ("vcpus", "memory", "disk")
    }
    assert all(0 < s.value <= 1 for s in ratio), ratio
    hosts = by_site(await asyncio.to_thread(prometheus.query, "site:cellfed_cell_hosts_up:sum"))
    assert hosts == {s.site: s.hosts for s in SITES}
    age = by_site(
        await asyncio.to_thread(prometheus.query, "site:cellfed_cell_agent_heartbeat_age_seconds:max")
    )
    assert set(age) == {s.site for s in SITES} and all(0 <= v < 10 for v in age.values()), age


async def test_every_rule_evaluates(prometheus: PrometheusProcess, traffic: None) -> None:
    await until(prometheus, f"site:cellfed_router_requests:rate{W}", one_per_site)
    groups = await asyncio.to_thread(prometheus.rule_groups)
    health = {r["name"]: (r["health"], r.get("lastError")) for g in groups for r in g["rules"]}
    expected = [r["record"] for g in recording_rules()["groups"] for r in g["rules"]]
    assert sorted(health) == sorted(expected)
    assert all(h == "ok" for h, _ in health.values()), health


async def test_promtool_accepts_the_generated_config_and_rules(
    prometheus: PrometheusProcess, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(recording_rules(), sort_keys=False))
    for args in (
        ["check", "rules", str(rules)],
        ["check", "config", str(prometheus.directory / CONFIG_FILE)],
    ):
        out = await asyncio.to_thread(
            subprocess.run, [PROMTOOL, *args], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stdout + out.stderr
