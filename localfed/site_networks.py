"""The provider network each site of a local federation (and of the in-process harness) gets: carved from
the documentation prefixes (RFC 5737, RFC 3849), so nothing a guest is handed can ever be routed
anywhere real. Site n gets one /26 (the three IPv4 documentation /24s hold twelve) and the /64
2001:db8:<n+1>::/64, distinct from every other site's. Pure."""

from __future__ import annotations

import ipaddress

from fedlib.networks import ProviderNetwork, parse_network

_V4_BLOCKS = ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24")
MAX_SITES = 4 * len(_V4_BLOCKS)
BRIDGE = "br-cellfed"


def site_network(n: int, name: str = "public") -> ProviderNetwork:
    if not 0 <= n < MAX_SITES:
        raise ValueError(f"site index {n} outside the {MAX_SITES} documentation /26s")
    block = ipaddress.IPv4Network(_V4_BLOCKS[n // 4])
    subnet = list(block.subnets(new_prefix=26))[n % 4]
    first = int(subnet.network_address)
    return parse_network({
        "name": name, "bridge": BRIDGE, "default": True,
        "ipv4": {"cidr": str(subnet), "gateway": str(ipaddress.IPv4Address(first + 1)),
                 "pool": [str(ipaddress.IPv4Address(first + 10)), str(ipaddress.IPv4Address(first + 62))]},
        "ipv6": {"prefix": f"2001:db8:{n + 1:x}::/64", "gateway": f"2001:db8:{n + 1:x}::1"},
        "dns": [str(ipaddress.IPv4Address(first + 1))],
    })  # fmt: skip
