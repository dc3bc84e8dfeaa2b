"""The shape of a local Cassandra cluster, checked as data: no processes, no files."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedlib.errors import ConfigError
from localfed.cassandra.node_config import (
    ClusterSpec,
    Ports,
    jvm_argv,
    node_paths,
    nodes,
    parse_dcs,
    render_logback,
    render_rackdc,
    render_yaml,
    spec_from_dict,
    spec_to_dict,
)

DEFAULTS = {
    "cluster_name": "Test Cluster",
    "num_tokens": 256,
    "commitlog_sync": "periodic",
    "commitlog_sync_period_in_ms": 10000,
    "start_rpc": True,
    "hinted_handoff_enabled": True,
}


def spec(**overrides: object) -> ClusterSpec:
    fields: dict[str, object] = {
        "dcs": ("eu-west", "us-east", "ap-south"),
        "nodes_per_dc": 1,
        "address_base": "127.0.0.11",
        "directory": Path("/srv/c"),
    }
    fields.update(overrides)
    return ClusterSpec(**fields)  # type: ignore[arg-type]


def test_nodes_get_consecutive_addresses_in_dc_order() -> None:
    got = [(n.name, n.dc, n.address) for n in nodes(spec(nodes_per_dc=2))]
    assert got == [
        ("eu-west-1", "eu-west", "127.0.0.11"),
        ("eu-west-2", "eu-west", "127.0.0.12"),
        ("us-east-1", "us-east", "127.0.0.13"),
        ("us-east-2", "us-east", "127.0.0.14"),
        ("ap-south-1", "ap-south", "127.0.0.15"),
        ("ap-south-2", "ap-south", "127.0.0.16"),
    ]


def test_parse_dcs_splits_and_strips() -> None:
    assert parse_dcs("eu-west, us-east") == ("eu-west", "us-east")
    assert parse_dcs(" ") == ()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"dcs": ("EU WEST",)}, "dcs"),
        ({"dcs": ()}, "dcs"),
        ({"dcs": ("eu-west", "eu-west")}, "dcs"),
        ({"dcs": ("eu_west",)}, "dcs"),
        ({"nodes_per_dc": 0}, "nodes_per_dc"),
        ({"rf": 2}, "rf"),
        ({"rf": 0}, "rf"),
        ({"address_base": "10.0.0.1"}, "address_base"),
        ({"address_base": "localhost"}, "address_base"),
        ({"address_base": "127.0.0.0"}, "address_base"),
        ({"address_base": "127.255.255.253"}, "address_base"),  # three nodes would overflow 127/8
    ],
)
def test_invalid_specs_name_the_setting(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        spec(**overrides)
    assert err.value.field == field
    assert "--" + field.replace("_", "-") in err.value.message


@given(
    dc_count=st.integers(1, 6),
    per_dc=st.integers(1, 5),
    base=st.integers(int(ipaddress.IPv4Address("127.0.0.1")), int(ipaddress.IPv4Address("127.255.255.200"))),
)
def test_valid_specs_give_unique_loopback_addresses(dc_count: int, per_dc: int, base: int) -> None:
    dcs = tuple(f"dc-{i}" for i in range(dc_count))
    s = spec(dcs=dcs, nodes_per_dc=per_dc, address_base=str(ipaddress.IPv4Address(base)))
    addresses = [ipaddress.IPv4Address(n.address) for n in nodes(s)]
    assert len(set(addresses)) == dc_count * per_dc
    assert all(a in ipaddress.IPv4Network("127.0.0.0/8") for a in addresses)
    assert {n.dc for n in nodes(s)} == set(dcs)


def test_yaml_overrides_defaults_for_a_durable_multi_dc_node() -> None:
    s = spec(ports=Ports(native=19042))
    node = nodes(s)[1]
    conf = render_yaml(s, node, DEFAULTS)
    assert conf["commitlog_sync"] == "batch"
    assert conf["commitlog_sync_batch_window_in_ms"] == 2
    assert "commitlog_sync_period_in_ms" not in conf  # Cassandra rejects batch mode with a period set
    assert conf["listen_address"] == conf["rpc_address"] == "127.0.0.12"
    assert conf["native_transport_port"] == 19042
    assert conf["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.11,127.0.0.12,127.0.0.13"
    assert conf["endpoint_snitch"] == "GossipingPropertyFileSnitch"
    assert (conf["num_tokens"], conf["start_rpc"], conf["auto_bootstrap"]) == (16, False, False)
    assert conf["hinted_handoff_enabled"] is True  # defaults we do not override survive
    assert conf["data_file_directories"] == ["/srv/c/nodes/us-east-1/data"]
    assert conf["commitlog_directory"] == "/srv/c/nodes/us-east-1/commitlog"
    assert DEFAULTS["commitlog_sync"] == "periodic"  # the input is not mutated


def test_rackdc_and_logback_are_per_node() -> None:
    s = spec()
    node = nodes(s)[2]
    assert render_rackdc(node) == "dc=ap-south\nrack=rack1\n"
    logback = render_logback(node_paths(s, node))
    assert "/srv/c/nodes/ap-south-1/logs/system.log" in logback
    assert '<root level="INFO">' in logback


def test_jvm_argv_runs_the_daemon_directly_on_java_17() -> None:
    s = spec()
    node = nodes(s)[0]
    argv = jvm_argv(s, node, java="/usr/bin/java", cassandra_home=Path("/opt/c"))
    assert argv[0] == "/usr/bin/java"
    assert argv[-1] == "org.apache.cassandra.service.CassandraDaemon"
    classpath = argv[argv.index("-cp") + 1]
    assert classpath.split(":")[0] == "/srv/c/nodes/eu-west-1/conf"  # node conf shadows the bundle's
    for flag in (
        "-XX:+UseSerialGC",
        "-Xmx384m",
        "-javaagent:/opt/c/lib/jamm-0.2.6.jar",
        "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
        "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
        "-Dcassandra.boot_without_jna=true",
        "-Dcassandra.ring_delay_ms=3000",
        "-Dcassandra.config=file:///srv/c/nodes/eu-west-1/conf/cassandra.yaml",
    ):
        assert flag in argv
    assert not any("jmxremote" in a for a in argv)


def test_spec_round_trips_through_the_manifest_form() -> None:
    s = spec(nodes_per_dc=2, rf=2, ports=Ports(storage=17000))
    assert spec_from_dict(spec_to_dict(s)) == s
