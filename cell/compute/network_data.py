"""OpenStack's `network_data.json` for an instance's NICs: the links, networks and services that
cloud-init's ConfigDrive reader (and other guests) configure themselves from, with no metadata service.

Pure: an `Attachment` per NIC (its MAC, the provider network, the IPv4 address the cell allocated and the
EUI-64 IPv6 address its MAC gives) becomes one physical link and its ipv4 and ipv6 networks, each with
its default route and the network's DNS servers as services."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from fedlib.macs import eui64_address, parse_mac
from fedlib.networks import ProviderNetwork


@dataclass(frozen=True)
class Attachment:
    network: ProviderNetwork
    mac: str
    ipv4: ipaddress.IPv4Address | None

    def __post_init__(self) -> None:
        parse_mac(self.mac)

    @property
    def ipv6(self) -> ipaddress.IPv6Address | None:
        return None if self.network.ipv6 is None else eui64_address(self.network.ipv6.prefix, self.mac)


def network_data(attachments: Sequence[Attachment]) -> dict[str, object]:
    links, networks, services = [], [], []
    seen_dns: set[str] = set()
    for n, a in enumerate(attachments):
        link = f"tap{n}"
        links.append({"id": link, "type": "phy", "ethernet_mac_address": a.mac, "mtu": 1500})
        v4, v6 = a.network.ipv4, a.network.ipv6
        if v4 is not None and a.ipv4 is not None:
            networks.append({
                "id": f"{a.network.name}-v4", "link": link, "type": "ipv4",
                "ip_address": str(a.ipv4), "netmask": str(v4.cidr.netmask),
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": str(v4.gateway)}],
                "network_id": a.network.name,
            })  # fmt: skip
        if v6 is not None and a.ipv6 is not None:
            networks.append({
                "id": f"{a.network.name}-v6", "link": link, "type": "ipv6",
                "ip_address": f"{a.ipv6}/{v6.prefix.prefixlen}",
                "routes": [{"network": "::", "netmask": "::", "gateway": str(v6.gateway)}],
                "network_id": a.network.name,
            })  # fmt: skip
        for server in a.network.dns:
            if str(server) not in seen_dns:
                seen_dns.add(str(server))
                services.append({"type": "dns", "address": str(server)})
    return {"links": links, "networks": networks, "services": services}
