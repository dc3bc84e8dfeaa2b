"""A guest's NICs: the domain XML's virtio interface on the provider network's bridge with the cell's
MAC, and OpenStack's network_data.json on the config drive (links, ipv4 and EUI-64 ipv6 networks with
their routes, DNS services), read back from the ISO as a guest would."""

from __future__ import annotations

import ipaddress
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cell.compute.config_drive import ConfigDriveSpec, build_config_drive, read_config_drive
from cell.compute.domain_spec import Nic
from cell.compute.domain_xml import build_domain_xml
from cell.compute.network_data import Attachment, network_data
from fedlib.errors import InvalidArgument
from fedlib.macs import mac_for
from fedlib.networks import parse_networks
from tests.unit.cell.compute.test_domain_xml import spec

PUBLIC, BACKEND = parse_networks([
    {"name": "public", "bridge": "br-public", "default": True,
     "ipv4": {"cidr": "203.0.113.0/26", "gateway": "203.0.113.1", "pool": ["203.0.113.10", "203.0.113.62"]},
     "ipv6": {"prefix": "2001:db8:1::/64", "gateway": "fe80::1"}, "dns": ["192.0.2.53", "2001:db8::53"]},
    {"name": "backend", "bridge": "br-backend", "dns": ["192.0.2.53"],
     "ipv4": {"cidr": "198.51.100.0/24", "gateway": "198.51.100.1",
              "pool": ["198.51.100.2", "198.51.100.9"]}},
])  # fmt: skip
MAC0, MAC1 = mac_for("cell-a", 0), mac_for("cell-a", 1)


def test_each_nic_is_a_virtio_interface_on_its_bridge_with_its_mac() -> None:
    dom = ET.fromstring(build_domain_xml(spec(nics=(Nic(MAC0, "br-public"), Nic(MAC1, "br-backend")))))
    interfaces = dom.findall("./devices/interface")
    assert [(i.get("type"), i.find("mac").get("address"), i.find("source").get("bridge"),  # type: ignore[union-attr]
             i.find("model").get("type")) for i in interfaces] == [  # type: ignore[union-attr]
        ("bridge", MAC0, "br-public", "virtio"), ("bridge", MAC1, "br-backend", "virtio"),
    ]  # fmt: skip
    assert ET.fromstring(build_domain_xml(spec())).findall("./devices/interface") == []  # no NIC asked


@pytest.mark.parametrize(
    ("mac", "bridge", "field"), [("52:54:00:zz:00:01", "br0", "mac"), (MAC0, "br 0", "bridge")]
)
def test_a_bad_nic_is_refused_naming_the_field(mac: str, bridge: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        Nic(mac, bridge)
    assert err.value.field == field


def test_network_data_has_a_link_per_nic_its_networks_routes_and_dns() -> None:
    data = network_data([
        Attachment(PUBLIC, MAC0, ipaddress.IPv4Address("203.0.113.10")),
        Attachment(BACKEND, MAC1, ipaddress.IPv4Address("198.51.100.2")),
    ])  # fmt: skip
    assert data["links"] == [
        {"id": "tap0", "type": "phy", "ethernet_mac_address": MAC0, "mtu": 1500},
        {"id": "tap1", "type": "phy", "ethernet_mac_address": MAC1, "mtu": 1500},
    ]
    v4, v6, backend = data["networks"]  # type: ignore[misc]
    assert (v4["type"], v4["link"], v4["ip_address"], v4["netmask"]) == (
        "ipv4",
        "tap0",
        "203.0.113.10",
        "255.255.255.192",
    )
    assert v4["routes"] == [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "203.0.113.1"}]
    expected6 = Attachment(PUBLIC, MAC0, None).ipv6
    assert (
        v6["type"] == "ipv6"
        and v6["ip_address"] == f"{expected6}/64"
        and v6["routes"][0]["gateway"] == "fe80::1"
    )
    assert backend["link"] == "tap1" and backend["ip_address"] == "198.51.100.2"
    assert data["services"] == [
        {"type": "dns", "address": "192.0.2.53"},
        {"type": "dns", "address": "2001:db8::53"},
    ]


def test_the_config_drive_carries_network_data_json(tmp_path: Path) -> None:
    from tests.unit.cell.compute.test_config_drive import IID, UUID

    data = network_data([Attachment(PUBLIC, MAC0, ipaddress.IPv4Address("203.0.113.10"))])
    path = build_config_drive(
        ConfigDriveSpec(IID, UUID, "tenant-1", "cell-a", network_data=data), tmp_path / "c.iso"
    )
    files = read_config_drive(path)
    assert json.loads(files["openstack/latest/network_data.json"]) == data
    without = read_config_drive(
        build_config_drive(ConfigDriveSpec(IID, UUID, "tenant-1", "cell-a"), tmp_path / "d.iso")
    )
    assert "openstack/latest/network_data.json" not in without
