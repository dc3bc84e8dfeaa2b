"""A real Prometheus over a local federation: its configuration and recording rules (pure data, here
first), and the process that runs /usr/bin/prometheus on them and answers PromQL (below).

Every target is labelled with its site, region and component, and scraped with `honor_labels`: a router
already labels its series with its site (the same value), a cell controller or compute agent does not,
and gets the target's. The recording rules are the ones k8s/monitoring runs (there with a 5m window, and
tests/k8s/test_monitoring.py holds the two equal), so what `cellfed up --prometheus` shows is what
operators see. Names follow Prometheus' `level:metric:operations`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from localfed.launcher import LocalFederation

PROMETHEUS = "/usr/bin/prometheus"
LOCAL_INTERVAL_S = 2.0
LOCAL_WINDOW = "30s"  # a rate needs several scrapes in its window: 15 at 2s
CONFIG_FILE = "prometheus.yml"
RULES_FILE = "cellfed-rules.yml"
READY_TIMEOUT_S = 30.0

# prometheus-client's <counter>_created series (a start time per series): unused, and half the series of
# every counter and histogram. k8s/monitoring/prometheus-region.yml drops them the same way.
DROP_CREATED = {"source_labels": ["__name__"], "regex": "cellfed_.+_created", "action": "drop"}


@dataclass(frozen=True)
class Target:
    component: str  # router, cell or agent
    site: str
    region: str
    address: str  # host:port serving /metrics

    @property
    def job(self) -> str:
        return job_of(self.component)


def job_of(component: str) -> str:
    return f"cellfed-{component}"


def scrape_config(
    targets: Sequence[Target], *, interval_s: float = LOCAL_INTERVAL_S, rule_files: Sequence[str] = ()
) -> dict[str, Any]:
    """A prometheus.yml: one job per component, every target labelled with site, region and component."""
    interval = f"{interval_s:g}s"
    jobs: dict[str, list[dict[str, Any]]] = {}
    for t in sorted(targets, key=lambda t: (t.job, t.site, t.address)):
        labels = {"site": t.site, "region": t.region, "component": t.component}
        jobs.setdefault(t.job, []).append({"targets": [t.address], "labels": labels})
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": list(rule_files),
        "scrape_configs": [
            {
                "job_name": job,
                "honor_labels": True,
                "static_configs": static,
                "metric_relabel_configs": [DROP_CREATED],
            }
            for job, static in jobs.items()
        ],
    }


def recording_rules(window: str = LOCAL_WINDOW) -> dict[str, Any]:
    """The cellfed recording rules; `window` is the rate window (30s locally, 5m in k8s/monitoring).

    Rules of one group run in order, so later rules build on earlier ones."""
    w = window
    requests = f"site:cellfed_router_requests:rate{w}"
    errors = f"site:cellfed_router_request_errors:rate{w}"
    rules = [
        (requests, f"sum by (site) (rate(cellfed_router_requests_total[{w}]))"),
        (errors, f'sum by (site) (rate(cellfed_router_requests_total{{code!="OK"}}[{w}]))'),
        # 0, not absent, while a site has requests and no errors (the error series do not exist yet).
        (f"site:cellfed_router_request_errors:ratio_rate{w}", f"({errors} or {requests} * 0) / {requests}"),
        # The same histogram the routers summarise for the federation view (cellapi.router.traffic).
        (
            f"site:cellfed_router_request_duration_seconds:p99_rate{w}",
            "histogram_quantile(0.99, sum by (site, le) "
            f"(rate(cellfed_router_request_duration_seconds_bucket[{w}])))",
        ),
        (
            f"site_target_site:cellfed_router_forward_duration_seconds:p99_rate{w}",
            "histogram_quantile(0.99, sum by (site, target_site, le) "
            f"(rate(cellfed_router_forward_duration_seconds_bucket[{w}])))",
        ),
        (
            f"site_target_site:cellfed_router_list_unreachable_cells:rate{w}",
            f"sum by (site, target_site) (rate(cellfed_router_list_unreachable_cells_total[{w}]))",
        ),
        (
            "site_peer:cellfed_router_probe_rtt_seconds:max",
            'max by (site, peer) (cellfed_router_probe_rtt_seconds{peer=~"cell/.+"})',
        ),
    ]
    for _, metric in _CAPACITY:
        rules.append((f"site_state:{metric}:sum", f"sum by (site, state) ({metric})"))
    rules.append(("site_resource:cellfed_cell_capacity_free:ratio", _free_ratio()))
    rules += [
        ("site_status:cellfed_cell_instances:sum", "sum by (site, status) (cellfed_cell_instances)"),
        ("site:cellfed_cell_hosts_up:sum", "sum by (site) (cellfed_cell_hosts_up)"),
        (
            "site:cellfed_cell_agent_heartbeat_age_seconds:max",
            "max by (site) (cellfed_cell_agent_heartbeat_age_seconds)",
        ),
        (
            f"site:cellfed_cell_publish_errors:rate{w}",
            f"sum by (site) (rate(cellfed_cell_publish_errors_total[{w}]))",
        ),
        ("site_component:up:max", 'max by (site, component) (up{job=~"cellfed-.+"})'),
        (
            "site_component_version:cellfed_build_info:count",
            "count by (site, component, version) (cellfed_build_info)",
        ),
    ]
    return {"groups": [{"name": "cellfed", "rules": [{"record": r, "expr": e} for r, e in rules]}]}


_CAPACITY = (
    ("vcpus", "cellfed_cell_capacity_vcpus"),
    ("memory", "cellfed_cell_capacity_memory_bytes"),
    ("disk", "cellfed_cell_capacity_disk_bytes"),
)


def _free_ratio() -> str:
    """Free / total per site and resource (vcpus, memory, disk), from the site_state sums above."""
    parts = [
        f'label_replace(site_state:{metric}:sum{{state="free"}} / ignoring (state) '
        f'site_state:{metric}:sum{{state="total"}}, "resource", "{resource}", "", "")'
        for resource, metric in _CAPACITY
    ]
    return " or ".join(parts)


def targets_of(fed: LocalFederation) -> list[Target]:
    """Every metrics endpoint of a running local federation (its `metrics_ports`: 'router:par1',
    'cell:par1', 'agent:par1-h1') as a scrape target of its site and region."""
    out = []
    for name, port in sorted(fed.metrics_ports.items()):
        component, _, ident = name.partition(":")
        site = next((s for s in fed.sites if ident == s.site or ident.startswith(f"{s.site}-h")), None)
        if site is None:
            raise ValueError(f"metrics endpoint {name!r} belongs to no site of this federation")
        out.append(Target(component, site.site, site.region, f"127.0.0.1:{port}"))
    return out


# The process.


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


class PrometheusError(RuntimeError):
    pass


@dataclass
class PrometheusProcess:
    proc: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str, timeout_s: float = 5.0) -> list[Series]:
        """An instant query (now); a scalar comes back as one series without labels."""
        data = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout_s)
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [Series(r["metric"], float(r["value"][1])) for r in result]
        if kind == "scalar":
            return [Series({}, float(result[1]))]
        raise PrometheusError(f"{promql!r} returned a {kind}, not an instant vector")

    def active_targets(self, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """Scrape targets with their labels, health ("up", "down", "unknown") and last error."""
        data = self._get("/api/v1/targets?state=active", timeout_s)
        return list(data["activeTargets"])

    def rule_groups(self, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The loaded rule groups, each rule with its health ("ok", "err", "unknown") and last error."""
        return list(self._get("/api/v1/rules", timeout_s)["groups"])

    def _get(self, path: str, timeout_s: float) -> Any:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:  # 400/422: the API explains in the body
            body = json.load(exc)
        if body.get("status") != "success":
            raise PrometheusError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def write_config(directory: Path, targets: Sequence[Target], interval_s: float = LOCAL_INTERVAL_S) -> Path:
    """Writes prometheus.yml and the rules file into `directory`; returns the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / RULES_FILE
    rules.write_text(yaml.safe_dump(recording_rules(), sort_keys=False, width=1000))
    config = directory / CONFIG_FILE
    config.write_text(
        yaml.safe_dump(
            scrape_config(targets, interval_s=interval_s, rule_files=[str(rules)]), sort_keys=False
        )
    )
    return config


def start_prometheus(
    directory: Path, targets: Sequence[Target], port: int = 0, *, binary: str = PROMETHEUS
) -> PrometheusProcess:
    """Runs Prometheus on 127.0.0.1:`port` (0: a free one) over `targets`; returns once it is ready."""
    directory = directory.absolute()
    config = write_config(directory, targets)
    for attempt in range(3):  # a free port found now can be taken before Prometheus binds it
        chosen = port or _free_port()
        proc = _spawn(binary, config, directory, chosen)
        running = PrometheusProcess(proc, chosen, directory)
        try:
            _wait_ready(running)
            return running
        except PrometheusError:
            running.stop()
            if port or attempt == 2 or "address already in use" not in _log_tail(directory):
                raise
    raise AssertionError("unreachable")


def _spawn(binary: str, config: Path, directory: Path, port: int) -> subprocess.Popen[bytes]:
    with open(directory / "prometheus.log", "ab") as log:
        return subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _wait_ready(p: PrometheusProcess, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise PrometheusError(
                f"prometheus exited with code {p.proc.returncode}: {_log_tail(p.directory)}"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{p.url}/-/ready", timeout=1.0) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise PrometheusError(f"prometheus was not ready within {timeout_s:.0f}s: {_log_tail(p.directory)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_tail(directory: Path, lines: int = 5) -> str:
    try:
        return " | ".join((directory / "prometheus.log").read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"
