"""A port the cell decided, across the Agent API, as the host uses it: the controller's spawn spec carries
each NIC with its provider network's bridge, subnet, gateway and DNS; the agent turns it into the
domain's virtio interface and the config drive's network_data.json (read back from the ISO as a guest
would), and refuses a NIC that does not hold together, naming the field, before writing anything."""

from __future__ import annotations

import ipaddress
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cellfed.v1 import agent_pb2

from cell import lifecycle as lc
from cell.agent_link import AgentLink
from cell.compute.config_drive import read_config_drive
from cell.compute.domain_xml import build_domain_xml
from cell.compute.domains import HostLayout, materialize
from cell.compute.nics import attachments
from cell.placement import Flavor
from cell.records import CellInstance, InstanceSpec, Port
from fedlib.errors import InvalidArgument
from fedlib.macs import eui64_address, mac_for
from fedlib.networks import MAX_NETWORKS
from localfed.site_networks import site_network

NET = site_network(0)  # 203.0.113.0/26, 2001:db8:1::/64, bridge br-cellfed
IID = "par1-c1.01jq5m4f3e2d1c0b9a8z7y6x5w"
MAC = mac_for("par1-c1", 7)


def _spawn(*ports: Port) -> agent_pb2.SpawnDomain:
    spec = InstanceSpec(IID, "acme", "web", Flavor("m1.tiny", 1, 512, 1), "debian-12", 1_000)
    inst = CellInstance(spec, lc.Instance(IID, "h1", lc.State.BUILDING, 1, 1_000), True, ports)
    return AgentLink(None, "par1-c1", (NET,)).spawn_spec(inst)  # type: ignore[arg-type]


def test_the_cells_port_reaches_the_domain_and_the_config_drive(tmp_path: Path) -> None:
    spawn = _spawn(Port("public", MAC, 7, ipaddress.IPv4Address("203.0.113.10")))
    domain = materialize(spawn, HostLayout(tmp_path, "test"))
    (iface,) = ET.fromstring(build_domain_xml(domain)).findall("./devices/interface")
    assert iface.find("mac").get("address") == MAC  # type: ignore[union-attr]
    assert iface.find("source").get("bridge") == "br-cellfed"  # type: ignore[union-attr]
    files = read_config_drive(tmp_path / "drives" / f"{IID}.iso")
    data = json.loads(files["openstack/latest/network_data.json"])
    assert [link["ethernet_mac_address"] for link in data["links"]] == [MAC]
    v4, v6 = data["networks"]
    assert (v4["ip_address"], v4["netmask"]) == ("203.0.113.10", "255.255.255.192")
    assert v4["routes"][0]["gateway"] == "203.0.113.1"
    assert v6["ip_address"] == f"{eui64_address(ipaddress.IPv6Network('2001:db8:1::/64'), MAC)}/64"
    assert data["services"] == [{"type": "dns", "address": "203.0.113.1"}]


def test_a_guest_without_ports_gets_no_interface_and_no_network_data(tmp_path: Path) -> None:
    domain = materialize(_spawn(), HostLayout(tmp_path, "test"))
    assert domain.nics == ()
    assert "openstack/latest/network_data.json" not in read_config_drive(tmp_path / "drives" / f"{IID}.iso")


def _nic(**change: object) -> agent_pb2.Nic:
    nic = _spawn(Port("public", MAC, 7, ipaddress.IPv4Address("203.0.113.10"))).nics[0]
    for key, value in change.items():
        if key == "dns":
            del nic.dns[:]
            nic.dns.extend(value)  # type: ignore[arg-type]
        else:
            setattr(nic, key, value)
    return nic


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mac": "not-a-mac"}, "nics[0].mac"),
        ({"mac": "01:00:5e:00:00:01" * 100}, "nics[0].mac"),
        ({"ipv4_address": "198.51.100.7"}, "nics[0].ipv4.pool"),  # outside its subnet
        ({"ipv4_address": "203.0.113.1"}, "nics[0].ipv4.pool"),  # the gateway
        ({"ipv4_cidr": "203.0.113.0/33"}, "nics[0].ipv4.cidr"),
        ({"bridge": "a-bridge-name-too-long"}, "nics[0].bridge"),
        ({"ipv6_prefix": "2001:db8:1::/48"}, "nics[0].ipv6.prefix"),
        ({"network": "Not Valid"}, "nics[0].name"),
        ({"dns": ["x"] * 3}, "nics[0].dns[0]"),
    ],
)
def test_a_nic_that_does_not_hold_together_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    spawn = _spawn()
    spawn.nics.append(_nic(**change))
    with pytest.raises(InvalidArgument) as exc:
        materialize(spawn, HostLayout(tmp_path, "test"))
    assert exc.value.field == field and len(exc.value.message) < 300
    assert not (tmp_path / "drives").exists()  # refused before anything was written


def test_more_nics_than_networks_a_cell_may_declare_are_refused() -> None:
    with pytest.raises(InvalidArgument) as exc:
        attachments([_nic()] * (MAX_NETWORKS + 1))
    assert exc.value.field == "nics"
