"""NetworkPolicies: every selector selects real pods, and across the whole federation exactly the flows
the design needs are allowed (every pair of components, every site pair, every port in use)."""

from __future__ import annotations

import itertools

import pytest

from tests.k8s.netpol import Endpoint, allowed, namespace_labels, peer_matches
from tests.k8s.objects import SITES, Obj, federation, ident, iter_pod_templates, matches

OBJECTS = federation()
POLICIES = [o for o in OBJECTS if o["kind"] == "NetworkPolicy"]
NS_LABELS = namespace_labels(OBJECTS)

PROMETHEUS = Endpoint(
    "monitoring", {"app.kubernetes.io/name": "prometheus"}, {"kubernetes.io/metadata.name": "monitoring"}
)
KUBE_DNS = Endpoint("kube-system", {"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
CLIENT = Endpoint(None, {})  # a user on the Internet
EXTERNAL = {"prometheus": PROMETHEUS, "kube-dns": KUBE_DNS}


def _pods() -> dict[tuple[str, str], Endpoint]:
    """(site, component) -> the endpoint of that workload's pods."""
    out = {}
    for workload, ns, labels in iter_pod_templates(OBJECTS):
        site = workload["metadata"]["labels"]["cellfed.io/site"]
        out[(site, labels["app.kubernetes.io/component"])] = Endpoint(ns, labels, NS_LABELS[ns])
    return out


PODS = _pods()
COMPONENTS = sorted({component for _, component in PODS})
PORTS = [7000, 7001, 7100, 7101, 9042, 9100, 9101, 9102]
METRICS = {"router": 9102, "cell": 9100, "agent": 9101}


def expected(src: str, dst: str, same_site: bool, port: int) -> bool:
    """The design's flows (DESIGN "Processes"; a region's Cassandra DC spans its sites)."""
    flows = {
        ("router", "router", 7000),  # RTT probes of peer routers, any site
        ("router", "cell", 7100),  # any site: cross-site forwarding is by design
        ("router", "cassandra", 9042),
        ("cell", "cassandra", 9042),
        ("schema", "cassandra", 9042),
        ("cassandra", "cassandra", 7000),
        ("cassandra", "cassandra", 7001),
    }
    if (src, dst, port) in flows:
        return True
    return src == "agent" and dst == "cell" and port == 7101 and same_site  # the Agent API, own cell only


def test_every_component_is_modelled() -> None:
    assert COMPONENTS == ["agent", "cassandra", "cell", "router", "schema"]


@pytest.mark.parametrize("src, dst", list(itertools.product(COMPONENTS, COMPONENTS)))
def test_flows_between_components_are_exactly_the_design(src: str, dst: str) -> None:
    wrong = []
    for (s_site, d_site), port in itertools.product(itertools.product(SITES, SITES), PORTS):
        if (s_site, src) not in PODS or (d_site, dst) not in PODS:
            continue  # e.g. fra1 runs no schema Job
        got = allowed(POLICIES, PODS[(s_site, src)], PODS[(d_site, dst)], port)
        if got != expected(src, dst, s_site == d_site, port):
            wrong.append(f"{s_site}/{src} -> {d_site}/{dst}:{port} {'allowed' if got else 'denied'}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("site", SITES)
def test_outside_sources(site: str) -> None:
    for component in COMPONENTS:
        if (site, component) not in PODS:
            continue
        pod = PODS[(site, component)]
        for port in PORTS:
            client_ok = component == "router" and port == 7000
            assert allowed(POLICIES, CLIENT, pod, port) == client_ok, (component, port)
            scrape_ok = client_ok or METRICS.get(component) == port
            assert allowed(POLICIES, PROMETHEUS, pod, port) == scrape_ok, (component, port)
        assert allowed(POLICIES, pod, KUBE_DNS, 53), component
        assert not allowed(POLICIES, pod, CLIENT, 443), f"{component} may not dial out of the federation"


def _selected_endpoints(policy: Obj, peer: dict) -> list[Endpoint]:
    ns = policy["metadata"]["namespace"]
    candidates = [*PODS.values(), *EXTERNAL.values()]
    return [e for e in candidates if peer_matches(peer, ns, e)]


@pytest.mark.parametrize("policy", POLICIES, ids=ident)
def test_selectors_select_pods(policy: Obj) -> None:
    ns = policy["metadata"]["namespace"]
    selector = policy["spec"]["podSelector"]
    if selector:
        assert any(e.namespace == ns and matches(selector, e.labels) for e in PODS.values()), (
            "the policy selects no pod in its namespace"
        )
    for rule in [*policy["spec"].get("ingress", []), *policy["spec"].get("egress", [])]:
        for peer in [*rule.get("from", []), *rule.get("to", [])]:
            assert _selected_endpoints(policy, peer), f"peer {peer} selects no pod"
