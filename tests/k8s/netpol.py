"""NetworkPolicy semantics over rendered objects, enough to ask "may A open a TCP connection to B:port?".

Endpoints are pods described by (namespace, namespace labels, pod labels); a source outside the
cluster has namespace None and matches only rules without peers (we use no ipBlock). Semantics follow
the Kubernetes API: a pod selected by any policy of a direction is isolated in that direction and then
reachable only through some rule of a policy that selects it; a rule without peers admits every peer,
a rule without ports every port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.k8s.objects import Obj, matches


@dataclass(frozen=True)
class Endpoint:
    namespace: str | None
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str] = field(default_factory=dict)


def namespace_labels(objects: list[Obj]) -> dict[str, dict[str, str]]:
    """Labels of every Namespace, with the kubernetes.io/metadata.name label the API server adds."""
    out = {}
    for obj in objects:
        if obj["kind"] == "Namespace":
            name = obj["metadata"]["name"]
            out[name] = {**obj["metadata"].get("labels", {}), "kubernetes.io/metadata.name": name}
    return out


def peer_matches(peer: Mapping[str, Any], policy_namespace: str, endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        raise NotImplementedError("ipBlock peers are not modelled")
    if endpoint.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], endpoint.namespace_labels):
            return False
    elif endpoint.namespace != policy_namespace:
        return False
    return matches(peer.get("podSelector"), endpoint.labels)


def _port_matches(rule: Mapping[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == "TCP" and p.get("port") == port for p in ports)


def _admits(policies: list[Obj], target: Endpoint, other: Endpoint, port: int, direction: str) -> bool:
    """Whether `target`'s policies of `direction` (Ingress from `other` / Egress to `other`) allow it."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace") == target.namespace
        and matches(p["spec"]["podSelector"], target.labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True  # not isolated in this direction
    for policy in selecting:
        ns = policy["metadata"]["namespace"]
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if _port_matches(rule, port) and (
                not peers or any(peer_matches(peer, ns, other) for peer in peers)
            ):
                return True
    return False


def allowed(policies: list[Obj], source: Endpoint, dest: Endpoint, port: int) -> bool:
    """Egress from `source` (unless it is outside the cluster) and ingress to `dest` both allow it."""
    egress_ok = source.namespace is None or _admits(policies, source, dest, port, "Egress")
    return egress_ok and _admits(policies, dest, source, port, "Ingress")
