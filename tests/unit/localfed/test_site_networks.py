"""`cellfed up`'s networks: each site's cell gets `--networks-file` naming its own network from the
documentation prefixes (a /26 and a /64 per site, distinct), written once so a restart reads the same;
the tests' and benchmarks' federations declare none."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from fedlib.networks import parse_networks, to_declaration
from localfed.launcher import LocalFederation
from localfed.site_networks import MAX_SITES, site_network
from localfed.sites import default_sites, rtt_matrix


def test_every_site_index_gets_a_distinct_documentation_network_that_round_trips() -> None:
    nets = [site_network(n) for n in range(MAX_SITES)]
    docs = [ipaddress.ip_network(b) for b in ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24")]
    for i, net in enumerate(nets):
        assert net.ipv4 is not None and net.ipv6 is not None
        assert any(net.ipv4.cidr.subnet_of(d) for d in docs)  # type: ignore[arg-type]
        assert net.ipv6.prefix.subnet_of(ipaddress.IPv6Network("2001:db8::/32"))
        assert parse_networks([to_declaration(net)]) == (net,)
        for other in nets[:i]:
            assert other.ipv4 and other.ipv6
            assert not net.ipv4.cidr.overlaps(other.ipv4.cidr)
            assert not net.ipv6.prefix.overlaps(other.ipv6.prefix)
    with pytest.raises(ValueError):
        site_network(MAX_SITES)


def test_cellfed_up_gives_each_cell_its_sites_network_and_the_tests_none(tmp_path: Path) -> None:
    sites = default_sites(3)
    fed = LocalFederation(tmp_path, sites, [], rtt_matrix(sites, 1.0), networks=True)
    fed.cell_ports = {s.site: 1 for s in sites}
    declared = []
    for s in sites:
        argv = fed._cell_argv(s)
        path = Path(argv[argv.index("--networks-file") + 1])
        declared.append(parse_networks(json.loads(path.read_text()))[0])
        assert fed._cell_argv(s) == argv and path.read_text() == path.read_text()  # a restart: the same
    assert declared == [site_network(i) for i in range(len(sites))]
    plain = LocalFederation(tmp_path / "plain", sites, [], rtt_matrix(sites, 1.0))
    plain.cell_ports = fed.cell_ports
    assert all("--networks-file" not in plain._cell_argv(s) for s in sites)
