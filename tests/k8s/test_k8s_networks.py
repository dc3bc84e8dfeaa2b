"""Each site's provider networks as its cell controller reads them: the overlay's cellfed-networks
ConfigMap holds a declaration the cell's own parser accepts, mounted where `--networks-file` points, and
no two sites hand out the same addresses."""

from __future__ import annotations

import ipaddress
import json
from pathlib import PurePosixPath

import pytest

from fedlib.networks import parse_networks
from tests.k8s.objects import SITES, argv, containers, find, pod_spec, rendered


def _cell(site: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    objects = rendered(site)
    cell = find(objects, "Deployment", "cell")
    assert cell is not None
    return cell, objects


@pytest.mark.parametrize("site", SITES)
def test_the_cell_reads_its_sites_declaration_from_the_mounted_configmap(site: str) -> None:
    cell, objects = _cell(site)
    (container,) = containers(cell)
    flag = next(a for a in argv(container) if a.startswith("--networks-file="))
    path = PurePosixPath(flag.split("=", 1)[1])
    mount = next(m for m in container["volumeMounts"] if path.parent == PurePosixPath(m["mountPath"]))
    volume = next(v for v in pod_spec(cell)["volumes"] if v["name"] == mount["name"])
    source = find(objects, "ConfigMap", volume["configMap"]["name"])
    assert source is not None
    networks = parse_networks(json.loads(source["data"][path.name]))
    assert sum(n.default for n in networks) == 1


def test_no_two_sites_share_a_subnet_or_prefix() -> None:
    seen: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for site in SITES:
        data = find(rendered(site), "ConfigMap", "cellfed-networks")
        assert data is not None
        for net in parse_networks(json.loads(data["data"]["networks.json"])):
            prefixes = [p for p in (net.ipv4 and net.ipv4.cidr, net.ipv6 and net.ipv6.prefix) if p]
            for prefix in prefixes:
                clash = [(s, p) for s, p in seen if p.version == prefix.version and p.overlaps(prefix)]  # type: ignore[arg-type]
                assert not clash, (site, prefix, clash)
                seen.append((site, prefix))
