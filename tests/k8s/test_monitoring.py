"""k8s/monitoring: the Prometheus configurations pass promtool, the regional one finds exactly the
components' metrics ports in the rendered site manifests, the global one federates every recording rule,
the recording rules are localfed.prometheus's, the alerts fire on made-up series (promtool test rules),
and the rules and the Grafana dashboard only use metrics the code exports or the rules record."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cell.compute.metrics import AgentMetrics
from cell.metrics import CellMetrics
from cellapi.router.metrics import RouterMetrics
from localfed.prometheus import DROP_CREATED, Target, recording_rules, scrape_config
from tests.k8s.objects import K8S, SITES, argv, cli_flags, containers, pod_labels, rendered, workloads

MONITORING = K8S / "monitoring"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULE_FILES = ("cellfed-recording-rules.yml", "cellfed-alert-rules.yml", "cellfed-global-alert-rules.yml")
CONFIGS = ("prometheus-region.yml", "prometheus-global.yml")
EXAMPLE_REGION = "eu-west"  # the region prometheus-region.yml is written for


def _yaml(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


# Configuration and rules pass promtool.


@pytest.mark.parametrize("name", RULE_FILES)
def test_promtool_check_rules(name: str) -> None:
    out = _promtool("check", "rules", str(MONITORING / name))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", CONFIGS)
def test_promtool_check_config(name: str, tmp_path: Path) -> None:
    out = _promtool("check", "config", str(MONITORING / name))
    if out.returncode == 0:
        return
    assert "field kubernetes_sd_configs not found" in out.stdout + out.stderr, out.stdout + out.stderr
    # Debian builds Prometheus without Kubernetes discovery (NEWS.Debian: "Kubernetes support has been
    # completely removed"). Check everything else with promtool, a file_sd_configs in its place, and the
    # kubernetes_sd_configs blocks against the upstream schema here.
    config = _yaml(name)
    for job in config["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs", []):
            _check_kubernetes_sd(sd)
            job.setdefault("file_sd_configs", []).append({"files": ["targets.json"]})
    for rules in config.get("rule_files", []):
        shutil.copy(MONITORING / rules, tmp_path / rules)
    (tmp_path / name).write_text(yaml.safe_dump(config, sort_keys=False))
    out = _promtool("check", "config", name, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


_SD_KEYS = {"api_server", "role", "kubeconfig_file", "namespaces", "selectors", "attach_metadata"}
_SD_KEYS |= {"basic_auth", "authorization", "oauth2", "proxy_url", "tls_config", "follow_redirects"}
_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
_SELECTOR_TERM = re.compile(r"[A-Za-z0-9./_-]+(=|==|!=)[A-Za-z0-9._-]*|[A-Za-z0-9./_-]+ (in|notin) \([^)]*\)")


def _check_kubernetes_sd(sd: dict[str, Any]) -> None:
    """The kubernetes_sd_configs schema of the Prometheus docs (configuration.md)."""
    assert set(sd) <= _SD_KEYS, set(sd) - _SD_KEYS
    assert sd["role"] in _SD_ROLES
    assert set(sd.get("namespaces", {})) <= {"names", "own_namespace"}
    for selector in sd.get("selectors", []):
        assert set(selector) <= {"role", "label", "field"}, selector
        assert selector["role"] == sd["role"], "a pod discovery takes pod selectors only"
        for term in re.split(r",(?![^(]*\))", selector.get("label", "")):
            assert _SELECTOR_TERM.fullmatch(term.strip()), f"label selector term {term!r}"


# The regional scrape finds what the site manifests run.


def _relabel(labels: dict[str, str], configs: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus relabelling (keep, drop, replace: all this configuration uses); None: dropped."""
    labels = dict(labels)
    for c in configs:
        action = c.get("action", "replace")
        value = c.get("separator", ";").join(labels.get(n, "") for n in c.get("source_labels", []))
        match = re.fullmatch(c.get("regex", "(.*)"), value)  # Prometheus anchors its regexes
        if (action == "keep" and match is None) or (action == "drop" and match is not None):
            return None
        if action == "replace" and match is not None:
            out = _expand(c.get("replacement", "$1"), match)
            if out:
                labels[c["target_label"]] = out
            else:
                labels.pop(c["target_label"], None)
        assert action in ("keep", "drop", "replace"), f"the simulation does not know action {action}"
    return labels


def _expand(replacement: str, match: re.Match[str]) -> str:
    """Go's regexp Expand, as relabelling uses it: $1 or ${1} is a group of the match."""
    return re.sub(r"\$\{?(\w+)\}?", lambda g: match.group(int(g.group(1))) or "", replacement)


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _discovered_pod_ports(site: str) -> Iterator[dict[str, str]]:
    """What kubernetes_sd (role: pod) makes of one running pod per workload: a target per container port."""
    for workload in workloads(rendered(site)):
        template = workload["spec"]["template"]
        meta = {
            "__meta_kubernetes_namespace": workload["metadata"]["namespace"],
            "__meta_kubernetes_pod_name": f"{workload['metadata']['name']}-0",
            "__meta_kubernetes_pod_phase": "Running",
            **{f"__meta_kubernetes_pod_label_{_sanitize(k)}": v for k, v in pod_labels(workload).items()},
            **{
                f"__meta_kubernetes_pod_annotation_{_sanitize(k)}": v
                for k, v in template["metadata"].get("annotations", {}).items()
            },
        }
        for container in containers(workload, init=False):
            for port in container.get("ports", []):
                yield {
                    **meta,
                    "__address__": f"10.0.0.1:{port['containerPort']}",
                    "__meta_kubernetes_pod_container_name": container["name"],
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                    "_labels": json.dumps(pod_labels(workload)),
                    "_metrics_listen": cli_flags(argv(container)).get("--metrics-listen", ""),
                }


def _region_of(site: str) -> str:
    return next(pod_labels(w)["cellfed.io/region"] for w in workloads(rendered(site)))


@pytest.mark.parametrize("region", sorted({_region_of(s) for s in SITES}))
def test_regional_scrape_finds_every_component_of_the_regions_sites(region: str) -> None:
    text = (MONITORING / "prometheus-region.yml").read_text().replace(EXAMPLE_REGION, region)
    [job] = yaml.safe_load(text)["scrape_configs"]
    [sd] = job["kubernetes_sd_configs"]
    [selector] = sd["selectors"]
    wanted = dict(term.split("=", 1) for term in selector["label"].split(","))
    found = set()
    for site in SITES:
        for target in _discovered_pod_ports(site):
            if any(json.loads(target["_labels"]).get(k) != v for k, v in wanted.items()):
                continue  # the API server's label selector
            labels = _relabel(target, job["relabel_configs"])
            if labels is None:
                continue
            port = labels["__address__"].rpartition(":")[2]
            assert target["_metrics_listen"].endswith(f":{port}"), f"{site}: {port} is not --metrics-listen"
            found.add(
                (
                    labels["job"],
                    labels["component"],
                    labels["site"],
                    labels["region"],
                    labels["namespace"],
                    port,
                )
            )
    ports = {"cell": "9100", "agent": "9101", "router": "9102"}
    assert found == {
        (f"cellfed-{c}", c, s, region, f"cellfed-{s}", ports[c])
        for s in SITES
        if _region_of(s) == region
        for c in ("router", "cell", "agent")
    }


def test_scrape_settings_are_the_local_ones() -> None:
    """Honouring the routers' own site label, dropping _created series: as localfed.prometheus does."""
    [job] = _yaml("prometheus-region.yml")["scrape_configs"]
    local = scrape_config([Target("router", "par1", "eu-west", "127.0.0.1:1")])["scrape_configs"][0]
    assert job["honor_labels"] is local["honor_labels"] is True
    assert job["metric_relabel_configs"] == local["metric_relabel_configs"] == [DROP_CREATED]


# The rules.


def test_recording_rules_are_localfeds_with_a_5m_window() -> None:
    assert _yaml("cellfed-recording-rules.yml") == recording_rules("5m"), (
        "k8s/monitoring/cellfed-recording-rules.yml differs from localfed.prometheus.recording_rules('5m'):"
        " regenerate it (the command is in its header)"
    )


def _recorded() -> set[str]:
    return {r["record"] for g in _yaml("cellfed-recording-rules.yml")["groups"] for r in g["rules"]}


def test_global_prometheus_federates_every_recording_rule() -> None:
    [job] = _yaml("prometheus-global.yml")["scrape_configs"]
    assert job["metrics_path"] == "/federate" and job["honor_labels"] is True
    patterns = []
    for selector in job["params"]["match[]"]:
        m = re.fullmatch(r'\{__name__(=~?)"([^"]+)"(?:, *[^}]*)?\}', selector)
        assert m, selector
        patterns.append(m.group(2) if m.group(1) == "=~" else re.escape(m.group(2)))
    missing = {name for name in _recorded() if not any(re.fullmatch(p, name) for p in patterns)}
    assert not missing, f"not federated: {missing}"


_ALERTS = {
    "CellfedSiteDown",
    "CellfedCellControllerDown",
    "CellfedSiteMetricsAbsent",
    "CellfedCellFull",
    "CellfedRouterErrorRatioHigh",
    "CellfedAgentHeartbeatStale",
    "CellfedCassandraDcUnreachable",
    "CellfedPeerCellUnreachable",
}


def test_every_alert_has_a_severity_and_explains_itself() -> None:
    alerts = [r for g in _yaml("cellfed-alert-rules.yml")["groups"] for r in g["rules"]]
    assert {a["alert"] for a in alerts} == _ALERTS
    for a in alerts + [r for g in _yaml("cellfed-global-alert-rules.yml")["groups"] for r in g["rules"]]:
        assert a["labels"]["severity"] in ("critical", "warning"), a["alert"]
        assert a["annotations"]["summary"] and len(a["annotations"]["description"]) > 100, a["alert"]


def _selector(name: str, **labels: str) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    return {"series": _selector(name, **labels), "values": values}


def _firing(alert: str, **labels: str) -> dict[str, Any]:
    return {"labels": _selector("ALERTS", alertname=alert, alertstate="firing", **labels), "value": 1}


def test_alerts_fire_on_made_up_series(tmp_path: Path) -> None:
    """Over 20 minutes: par1 has no router and full vCPUs, fails 1 call in 6 and has a silent host, and
    cannot list sin1's cell; nyc1 has no cell controller; sin1's cell cannot write to Cassandra."""
    par1 = {"site": "par1", "region": "eu-west"}
    series = [
        _series("up", "0x30", job="cellfed-router", component="router", instance="a", **par1),
        _series("up", "1x30", job="cellfed-cell", component="cell", instance="b", **par1),
        _series("up", "1x30", job="cellfed-router", component="router", instance="c", site="nyc1"),
        _series("up", "0x30", job="cellfed-cell", component="cell", instance="d", site="nyc1"),
        _series("cellfed_cell_capacity_vcpus", "1x30", cell="par1-c1", state="free", **par1),
        _series("cellfed_cell_capacity_vcpus", "128x30", cell="par1-c1", state="total", **par1),
        _series("cellfed_cell_capacity_memory_bytes", "100x30", cell="par1-c1", state="free", **par1),
        _series("cellfed_cell_capacity_memory_bytes", "100x30", cell="par1-c1", state="total", **par1),
        _series("cellfed_router_requests_total", "0+60x30", method="GetInstance", code="OK", **par1),
        _series("cellfed_router_requests_total", "0+12x30", method="GetInstance", code="UNAVAILABLE", **par1),
        _series("cellfed_router_requests_total", "0+60x30", method="GetInstance", code="OK", site="nyc1"),
        _series(
            "cellfed_cell_agent_heartbeat_age_seconds", "1+60x30", cell="par1-c1", host="par1-h1", **par1
        ),
        _series("cellfed_cell_agent_heartbeat_age_seconds", "1x30", cell="par1-c1", host="par1-h2", **par1),
        _series(
            "cellfed_cell_publish_errors_total",
            "0+5x30",
            cell="sin1-c1",
            what="capacity",
            site="sin1",
            region="ap-south",
        ),
        _series("cellfed_router_list_unreachable_cells_total", "0+3x30", target_site="sin1", **par1),
    ]
    expected = [
        _firing("CellfedSiteDown", component="router", site="par1", severity="critical"),
        _firing("CellfedCellControllerDown", component="cell", site="nyc1", severity="critical"),
        _firing("CellfedCellFull", resource="vcpus", site="par1", severity="warning"),
        _firing("CellfedRouterErrorRatioHigh", site="par1", severity="warning"),
        _firing("CellfedAgentHeartbeatStale", cell="par1-c1", host="par1-h1", severity="warning", **par1),
        _firing(
            "CellfedCassandraDcUnreachable",
            cell="sin1-c1",
            site="sin1",
            region="ap-south",
            severity="critical",
        ),
        _firing("CellfedPeerCellUnreachable", site="par1", target_site="sin1", severity="warning"),
    ]
    # sin1 scraped for 100 minutes, then gone: absent from 105m, firing from 115m until `offset 1h` no
    # longer sees it either (165m).
    gone = [
        _series(
            "cellfed_build_info",
            "1x100 _x100",
            component="router",
            version="0.1.0",
            instance="e",
            site="sin1",
        ),
        _series(
            "cellfed_build_info", "1x200", component="router", version="0.1.0", instance="f", site="par1"
        ),
    ]
    tests = {
        "rule_files": [
            str(MONITORING / "cellfed-recording-rules.yml"),
            str(MONITORING / "cellfed-alert-rules.yml"),
        ],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": 'ALERTS{alertstate="firing"}', "eval_time": "20m", "exp_samples": expected},
                    {"expr": 'ALERTS{alertstate="firing"}', "eval_time": "1m", "exp_samples": []},
                ],
            },
            {
                "interval": "1m",
                "input_series": gone,
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertstate="firing"}',
                        "eval_time": "120m",
                        "exp_samples": [_firing("CellfedSiteMetricsAbsent", site="sin1", severity="warning")],
                    },
                    {"expr": 'ALERTS{alertstate="firing"}', "eval_time": "100m", "exp_samples": []},
                    {"expr": 'ALERTS{alertstate="firing"}', "eval_time": "170m", "exp_samples": []},
                ],
            },
        ],
    }
    path = tmp_path / "alerts.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    out = _promtool("test", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


# Every name an expression uses exists.


def _exported() -> set[str]:
    """Every series name the three components export (as Prometheus stores them)."""
    names = set()
    for metrics in (CellMetrics("c", CollectorRegistry()), AgentMetrics("h"), RouterMetrics("s")):
        for family in metrics.registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}
_IDENT = re.compile(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression selects (strings, matchers, ranges and grouping labels removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"label_values\(\s*([^,)]+)(,[^)]*)?\)", r" \1 ", text)  # Grafana: (metric, label)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in _IDENT.finditer(text):
        if text[m.end() :].lstrip().startswith("(") or m.group(0) in _KEYWORDS:
            continue  # a function or an operator
        names.add(m.group(0))
    return names


def _rule_exprs() -> Iterator[tuple[str, str]]:
    for name in RULE_FILES:
        for group in _yaml(name)["groups"]:
            for rule in group["rules"]:
                yield f"{name} {rule.get('record') or rule.get('alert')}", rule["expr"]


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["definition"]


def test_metric_names_extraction() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (site, le) (rate(a_bucket{code!="OK"}[5m]))) / ignoring (x) b:c:d'
        " offset 1h and on (site) up"
    ) == {"a_bucket", "b:c:d", "up"}
    assert metric_names("label_values(site:x:rate5m, site)") == {"site:x:rate5m"}


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_expressions_use_only_exported_or_recorded_names(source: str) -> None:
    known = _exported() | _recorded() | {"up", "ALERTS"}
    exprs = list(_rule_exprs() if source == "rules" else _dashboard_exprs())
    assert exprs
    unknown = {where: metric_names(expr) - known for where, expr in exprs if metric_names(expr) - known}
    assert not unknown, unknown


def test_dashboard_uses_recording_rules_only() -> None:
    """The global Prometheus holds nothing else (plus ALERTS): the dashboard must work there."""
    raw = {where: metric_names(expr) - _recorded() - {"ALERTS"} for where, expr in _dashboard_exprs()}
    assert not {w: n for w, n in raw.items() if n}, raw


def test_dashboard_layout() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        for target in p.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", p["title"]
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "site"}
