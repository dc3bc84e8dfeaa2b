"""Cross-references inside each rendered site: what one object names, another provides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.objects import (
    SITES,
    Obj,
    argv,
    containers,
    environment,
    expand,
    find,
    ident,
    matches,
    pod_labels,
    pod_spec,
    rendered,
    workloads,
)

WORKLOADS = [(site, w) for site in SITES for w in workloads(rendered(site))]
OPERATOR_SECRETS = {"cellfed-tls-router", "cellfed-tls-cell"}
README = (Path(__file__).resolve().parents[2] / "k8s" / "README.md").read_text()
WORKLOAD_IDS = [f"{s}:{ident(w)}" for s, w in WORKLOADS]


def _of_kind(kind: str) -> list[tuple[str, Obj]]:
    return [(site, o) for site in SITES for o in rendered(site) if o["kind"] == kind]


def _port_names_and_numbers(container: Obj) -> set[object]:
    ports = container.get("ports", [])
    return {p["containerPort"] for p in ports} | {p["name"] for p in ports if "name" in p}


SERVICES = _of_kind("Service")


@pytest.mark.parametrize("site, service", SERVICES, ids=[f"{s}:{ident(o)}" for s, o in SERVICES])
def test_service_selects_pods_and_their_ports(site: str, service: Obj) -> None:
    selector = service["spec"]["selector"]
    assert selector, "a Service without selector matches nothing here"
    targets = [w for w in workloads(rendered(site)) if matches({"matchLabels": selector}, pod_labels(w))]
    assert len(targets) == 1, f"selects {[ident(w) for w in targets]}"
    offered = set().union(*(_port_names_and_numbers(c) for c in containers(targets[0], init=False)))
    for port in service["spec"]["ports"]:
        assert port.get("targetPort", port["port"]) in offered, port


@pytest.mark.parametrize("site, workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_workload_selector_matches_its_pods_only(site: str, workload: Obj) -> None:
    if workload["kind"] == "Job":
        return  # Jobs select their pods by a generated uid
    selector = workload["spec"]["selector"]
    assert matches(selector, pod_labels(workload))
    others = [w for w in workloads(rendered(site)) if w is not workload]
    assert not [ident(w) for w in others if matches(selector, pod_labels(w))]


@pytest.mark.parametrize("site, workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_probe_ports_are_container_ports(site: str, workload: Obj) -> None:
    for container in containers(workload):
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if probe is None or "exec" in probe:
                continue
            (handler,) = [probe[h] for h in ("grpc", "httpGet", "tcpSocket") if h in probe]
            assert handler["port"] in _port_names_and_numbers(container), (container["name"], kind)


@pytest.mark.parametrize("site, workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_referenced_configmaps_and_secrets_exist(site: str, workload: Obj) -> None:
    objects = rendered(site)
    spec = pod_spec(workload)
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            source = find(objects, "ConfigMap", volume["configMap"]["name"])
            assert source is not None, f"volume {volume['name']}: no ConfigMap"
            for item in volume["configMap"].get("items", []):
                assert item["key"] in source.get("data", {}), item
        if "secret" in volume:
            # Never committed: the operator creates it (k8s/README.md says which and how), with the
            # keys of a kubernetes.io/tls Secret plus the federation's ca.crt.
            name = volume["secret"]["secretName"]
            assert name in OPERATOR_SECRETS and name in README, (
                f"volume {volume['name']}: {name} undocumented"
            )
            assert {item["key"] for item in volume["secret"]["items"]} == {"tls.crt", "tls.key", "ca.crt"}
    for container in containers(workload):
        for source in container.get("envFrom", []):
            assert "configMapRef" in source, "only ConfigMaps are used as env sources"
        environment(container, objects)  # raises KeyError on a missing ConfigMap or key


@pytest.mark.parametrize("site, workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_volume_mounts_name_volumes(site: str, workload: Obj) -> None:
    spec = pod_spec(workload)
    volumes = {v["name"] for v in spec.get("volumes", [])}
    volumes |= {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
    for container in containers(workload):
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, (container["name"], mount)
            assert "subPath" not in mount, "subPath mounts never see ConfigMap updates"


@pytest.mark.parametrize("site, workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_command_line_variables_resolve(site: str, workload: Obj) -> None:
    for container in containers(workload):
        env = environment(container, rendered(site))
        for word in argv(container):
            try:
                value = expand(word, env)
            except KeyError as exc:
                pytest.fail(f"{container['name']}: {word!r} uses undefined variable {exc}")
            if "$(" in word:
                assert value and not value.endswith("="), f"{word!r} expands to {value!r}"


PDBS = _of_kind("PodDisruptionBudget")


@pytest.mark.parametrize("site, pdb", PDBS, ids=[f"{s}:{ident(o)}" for s, o in PDBS])
def test_disruption_budget_covers_one_workload(site: str, pdb: Obj) -> None:
    covered = [w for w in workloads(rendered(site)) if matches(pdb["spec"]["selector"], pod_labels(w))]
    assert [w["kind"] for w in covered] in (["Deployment"], ["StatefulSet"])


@pytest.mark.parametrize("site", SITES)
def test_statefulset_service_is_headless(site: str) -> None:
    for sts in [o for o in rendered(site) if o["kind"] == "StatefulSet"]:
        service = find(rendered(site), "Service", sts["spec"]["serviceName"])
        assert service is not None and service["spec"].get("clusterIP") == "None"
        assert service["spec"].get("publishNotReadyAddresses") is True
        assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels(sts))
