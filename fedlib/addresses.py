"""An instance's NIC as everything outside its cell sees it (the API, the index, the tenant listing): its
provider network, MAC and addresses. Pure. In the keyspace one NIC is one text value,
`network,mac,ipv4,ipv6` (an absent address is empty), parsed back strictly: a row that does not read
as a NIC is refused, naming the field, never half-read."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from fedlib.errors import InvalidArgument
from fedlib.macs import parse_mac
from fedlib.names import shown
from fedlib.networks import MAX_NETWORKS, check_network_name


@dataclass(frozen=True)
class NicAddress:
    network: str
    mac: str
    ipv4: ipaddress.IPv4Address | None = None
    ipv6: ipaddress.IPv6Address | None = None

    def __post_init__(self) -> None:
        check_network_name(self.network, "addresses.network")
        try:
            parse_mac(self.mac)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.message, field="addresses.mac") from None

    def encode(self) -> str:
        return ",".join((self.network, self.mac, str(self.ipv4 or ""), str(self.ipv6 or "")))

    @classmethod
    def decode(cls, text: str) -> NicAddress:
        parts = text.split(",") if isinstance(text, str) and len(text) <= 200 else []
        if len(parts) != 4:
            raise InvalidArgument(f"address {shown(text)} is not network,mac,ipv4,ipv6", field="addresses")
        network, mac, v4, v6 = parts
        try:
            return cls(network, mac, ipaddress.IPv4Address(v4) if v4 else None,
                       ipaddress.IPv6Address(v6) if v6 else None)  # fmt: skip
        except ValueError:
            raise InvalidArgument(f"address {shown(text)} holds an invalid IP", field="addresses") from None

    def holds(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address in (self.ipv4, self.ipv6)


def check_addresses(addresses: Iterable[NicAddress]) -> tuple[NicAddress, ...]:
    out = tuple(addresses)
    if len(out) > MAX_NETWORKS or not all(isinstance(a, NicAddress) for a in out):
        raise InvalidArgument(f"addresses: at most {MAX_NETWORKS} NICs", field="addresses")
    return out


def parse_ip(text: str, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address a user filters by (`address=203.0.113.7`, `address=2001:db8::1`)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{field} {shown(text)} is not an IP address", field=field) from None
