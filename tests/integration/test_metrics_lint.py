"""Every /metrics endpoint of a real federation (tests/federation_harness.py), after some traffic, passes
`promtool check metrics` and keeps to the metric design (DESIGN "Observability"): names
`cellfed_<subsystem>_...` of the component's own subsystem, bounded label names only, never an instance id
or a tenant in a label value, and a cellfed_build_info of the right component and site."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fedlib.errors import CellfedError
from fedrpc.build_info import cellfed_version
from tests.federation_harness import SITES, Federation, running_federation
from tests.integration.test_routers import create_request

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Who and where (bounded by the federation's size), what was called and how it ended, and small fixed
# enumerations. Never an instance id, a tenant or a user.
ALLOWED_LABELS = {
    "site", "cell", "region", "host", "peer", "target_site",
    "method", "code",
    "outcome", "status", "state", "what", "call", "command", "power", "kind", "source",
    "version", "component",  # cellfed_build_info
    "le",  # histogram buckets
}  # fmt: skip
SUBSYSTEM = {"router": "cellfed_router_", "cell": "cellfed_cell_", "agent": "cellfed_agent_"}


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(
        tmp_path_factory.mktemp("federation"), cassandra_cluster.contact_points
    ) as f:
        yield f


@pytest.fixture(scope="module")
async def expositions(fed: Federation) -> dict[str, str]:
    """component name ('router:par1', ...) -> its /metrics text, scraped after a round of traffic
    (creates, local and forwarded gets, a listing, misses, deletes) through every router."""
    created = []
    for site in SITES:
        client = fed.client(site.site)
        created.append(await client.create(create_request(f"lint-{site.site}")))
        await client.close()
    for site in SITES:
        client = fed.client(site.site)
        for inst in created:
            await client.get(inst.instance_id)
        await client.list()
        for other in SITES:  # a miss in every cell: each router forwards to every site
            with pytest.raises(CellfedError):
                await client.get(f"{other.cell}.00000000000000000000000000")
        await client.close()
    client = fed.client(SITES[0].site)
    async for _ in client.watch(created[0].instance_id):  # a stream is counted like a unary call
        break
    for inst in created:
        await client.action("Delete", inst.instance_id)
    await client.close()
    return {name: _scrape(port) for name, port in sorted(fed.metrics_ports.items())}


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _site_of(name: str) -> str:
    ident = name.partition(":")[2]
    return next(s.site for s in SITES if ident == s.site or ident.startswith(f"{s.site}-h"))


async def test_every_component_of_every_site_is_scraped(expositions: dict[str, str]) -> None:
    expected = {f"{c}:{s.site}" for s in SITES for c in ("router", "cell")}
    expected |= {f"agent:{s.site}-h{n}" for s in SITES for n in range(1, s.hosts + 1)}
    assert set(expositions) == expected


async def test_promtool_check_metrics_passes_on_every_endpoint(expositions: dict[str, str]) -> None:
    failures = {}
    for name, text in expositions.items():
        out = await asyncio.to_thread(
            subprocess.run,
            [PROMTOOL, "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            failures[name] = out.stdout + out.stderr
    assert not failures, failures


async def test_names_belong_to_the_component_subsystem(expositions: dict[str, str]) -> None:
    for name, text in expositions.items():
        prefix = SUBSYSTEM[name.partition(":")[0]]
        wrong = {f.name for f in text_string_to_metric_families(text) if not f.name.startswith(prefix)} - {
            "cellfed_build_info"
        }
        assert not wrong, f"{name}: {sorted(wrong)} are not {prefix}*"


async def test_only_bounded_labels(expositions: dict[str, str], fed: Federation) -> None:
    unbounded: dict[str, set[str]] = {}
    for name, text in expositions.items():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                extra = set(sample.labels) - ALLOWED_LABELS
                if extra:
                    unbounded.setdefault(f"{name} {family.name}", set()).update(extra)
    assert not unbounded, f"labels outside the design: {unbounded}"


async def test_no_instance_id_or_tenant_in_label_values(expositions: dict[str, str]) -> None:
    for name, text in expositions.items():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for key, value in sample.labels.items():
                    looks_like_instance = any(value.startswith(f"{s.cell}.") for s in SITES)
                    assert not looks_like_instance, f"{name} {sample.name} {key}={value!r}"
                    assert value not in ("acme", "other", "lister", "ops"), f"{name} {sample.name} {key}"


async def test_traffic_shows_up_in_the_router_metrics(expositions: dict[str, str]) -> None:
    for site in SITES:
        families = {f.name: f for f in text_string_to_metric_families(expositions[f"router:{site.site}"])}
        codes = {s.labels["code"] for s in families["cellfed_router_requests"].samples}
        assert {"OK", "NOT_FOUND"} <= codes, (site.site, codes)
        if site is SITES[0]:
            methods = {s.labels["method"] for s in families["cellfed_router_requests"].samples}
            assert "WatchInstance" in methods, methods
        targets = {
            s.labels["target_site"] for s in families["cellfed_router_forward_duration_seconds"].samples
        }
        assert targets == {s.site for s in SITES}, (site.site, targets)


async def test_build_info_names_the_component_and_site(expositions: dict[str, str]) -> None:
    for name, text in expositions.items():
        component = name.partition(":")[0]
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert "cellfed_build_info" in families, name
        [sample] = families["cellfed_build_info"].samples
        assert sample.value == 1
        assert sample.labels["component"] == component, name
        assert sample.labels["version"] == cellfed_version(), name
        # A process that knows its site says it; the others leave it to the scrape (never site="").
        assert sample.labels.get("site", _site_of(name)) == _site_of(name), name
        if component == "router":
            assert sample.labels["site"] == _site_of(name)
