"""The rendered k8s/ overlays and small readers over them, shared by the tests in tests/k8s."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.k8s.render import render

Obj = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SITES = sorted(p.name for p in (K8S / "sites").iterdir() if (p / "kustomization.yaml").is_file())
WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@functools.cache
def _rendered(site: str) -> tuple[Obj, ...]:
    return tuple(render(K8S / "sites" / site))


def rendered(site: str) -> list[Obj]:
    """The objects of one site overlay (shared: do not mutate)."""
    return list(_rendered(site))


def federation() -> list[Obj]:
    """Every site's objects together, as one cluster would hold them."""
    return [obj for site in SITES for obj in _rendered(site)]


def ident(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '-')}/{meta['name']}"


def find(objects: list[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in WORKLOADS]


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload: Obj, *, init: bool = True) -> list[Obj]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions); {} selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def argv(container: Obj) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def environment(container: Obj, namespace_objects: list[Obj]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env. Downward-API
    values are stand-ins (`<fieldRef:path>`); a missing ConfigMap or key raises KeyError."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]
        cm = find(namespace_objects, "ConfigMap", ref["name"])
        if cm is None:
            raise KeyError(f"envFrom: no ConfigMap {ref['name']}")
        env.update({source.get("prefix", "") + k: v for k, v in cm.get("data", {}).items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            env[item["name"]] = f"<fieldRef:{source['fieldRef']['fieldPath']}>"
        else:
            ref = source["configMapKeyRef"]
            cm = find(namespace_objects, "ConfigMap", ref["name"])
            if cm is None or ref["key"] not in cm.get("data", {}):
                raise KeyError(f"env {item['name']}: no key {ref['key']} in ConfigMap {ref['name']}")
            env[item["name"]] = cm["data"][ref["key"]]
    return env


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion ($$ escapes). Unlike the kubelet, which leaves an unknown reference
    as it is, an unknown variable raises KeyError: in these manifests it is always a mistake."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env[match.group(1)]

    return _VAR.sub(one, text)


def cli_flags(words: list[str]) -> dict[str, str]:
    """`--flag=value` and `--flag value` words of a command line, by flag."""
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            flag, sep, value = word.partition("=")
            if not sep and i + 1 < len(words) and not words[i + 1].startswith("--"):
                value, i = words[i + 1], i + 1
            out[flag] = value
        i += 1
    return out


def in_namespace(objects: list[Obj], namespace: str) -> list[Obj]:
    return [o for o in objects if o["metadata"].get("namespace") == namespace]


def iter_pod_templates(objects: list[Obj]) -> Iterator[tuple[Obj, str, dict[str, str]]]:
    """(workload, namespace, pod labels) of every workload."""
    for w in workloads(objects):
        yield w, w["metadata"].get("namespace", ""), pod_labels(w)
