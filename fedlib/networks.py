"""A cell's provider networks as declared by its operator: what a PoP routes to its micro-datacenter and
hands addresses out of. Pure: parsing and validating a declaration (a `cell serve --networks-file` JSON
document, a k8s ConfigMap), every refusal naming the field and the problem.

A declaration:
    {"name": "public", "bridge": "br-public", "default": true,
     "ipv4": {"cidr": "203.0.113.0/26", "gateway": "203.0.113.1", "pool": ["203.0.113.10", "203.0.113.62"]},
     "ipv6": {"prefix": "2001:db8:1::/64", "gateway": "2001:db8:1::1"},
     "dns": ["192.0.2.53", "2001:db8::53"]}
IPv4 addresses come from the pool (cell.ipam allocates them). IPv6, where a network has a /64, is the
guest's SLAAC address, EUI-64 from its MAC (fedlib.macs): unique because MACs are, with no allocation
state to keep or to leak, and never reused because MACs never are."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedlib.errors import InvalidArgument
from fedlib.names import check_id, shown

_BRIDGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # Linux IFNAMSIZ: 15 characters
MAX_NETWORKS = 16
MAX_DNS = 4


@dataclass(frozen=True)
class Ipv4Subnet:
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    pool_start: ipaddress.IPv4Address
    pool_end: ipaddress.IPv4Address

    @property
    def pool_size(self) -> int:
        return int(self.pool_end) - int(self.pool_start) + 1


@dataclass(frozen=True)
class Ipv6Subnet:
    prefix: ipaddress.IPv6Network  # a /64: SLAAC (EUI-64 interface ids) needs one
    gateway: ipaddress.IPv6Address


@dataclass(frozen=True)
class ProviderNetwork:
    name: str
    bridge: str
    default: bool
    ipv4: Ipv4Subnet | None
    ipv6: Ipv6Subnet | None
    dns: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]


def parse_networks(document: object) -> tuple[ProviderNetwork, ...]:
    """A cell's whole declaration (a JSON list of networks): each valid, names unique, bridges unique,
    IPv4 pools and IPv6 prefixes not overlapping, exactly one default."""
    if not isinstance(document, list) or not document:
        raise InvalidArgument("networks must be a non-empty list of network declarations", field="networks")
    if len(document) > MAX_NETWORKS:
        raise InvalidArgument(f"networks: at most {MAX_NETWORKS} per cell", field="networks")
    networks = tuple(parse_network(item, f"networks[{i}]") for i, item in enumerate(document))
    _check_together(networks)
    return networks


def parse_network(item: object, where: str = "network") -> ProviderNetwork:
    if not isinstance(item, Mapping):
        raise InvalidArgument(f"{where} must be an object", field=where)
    known = {"name", "bridge", "default", "ipv4", "ipv6", "dns"}
    unknown = sorted(str(k) for k in item if k not in known)
    if unknown:
        raise InvalidArgument(f"{where}: unknown field {shown(unknown[0])}", field=f"{where}.{unknown[0]}")
    name = check_network_name(_text(item.get("name"), f"{where}.name"), f"{where}.name")
    bridge = check_bridge(_text(item.get("bridge"), f"{where}.bridge"), f"{where}.bridge")
    default = item.get("default", False)
    if not isinstance(default, bool):
        raise InvalidArgument(f"{where}.default must be true or false", field=f"{where}.default")
    ipv4 = _ipv4(item["ipv4"], f"{where}.ipv4") if item.get("ipv4") is not None else None
    ipv6 = _ipv6(item["ipv6"], f"{where}.ipv6") if item.get("ipv6") is not None else None
    if ipv4 is None and ipv6 is None:
        raise InvalidArgument(f"{where} needs an ipv4 subnet, an ipv6 prefix or both", field=where)
    return ProviderNetwork(name, bridge, default, ipv4, ipv6, _dns(item.get("dns", []), f"{where}.dns"))


def to_declaration(network: ProviderNetwork) -> dict[str, object]:
    """The JSON declaration `parse_network` reads back as this network (for files a tool writes)."""
    out: dict[str, object] = {"name": network.name, "bridge": network.bridge, "default": network.default}
    if network.ipv4 is not None:
        v4 = network.ipv4
        out["ipv4"] = {"cidr": str(v4.cidr), "gateway": str(v4.gateway),
                       "pool": [str(v4.pool_start), str(v4.pool_end)]}  # fmt: skip
    if network.ipv6 is not None:
        out["ipv6"] = {"prefix": str(network.ipv6.prefix), "gateway": str(network.ipv6.gateway)}
    out["dns"] = [str(d) for d in network.dns]
    return out


def check_network_name(value: str, field: str = "network") -> str:
    """A network's name follows the rule of every other cellfed id (fedlib.names.check_id)."""
    return check_id(value, field)


def check_requested(names: Sequence[str], field: str = "networks") -> tuple[str, ...]:
    """The networks a create asks for: valid names, at most MAX_NETWORKS, none twice (one NIC each)."""
    if len(names) > MAX_NETWORKS:
        raise InvalidArgument(f"{field}: at most {MAX_NETWORKS} networks, not {len(names)}", field=field)
    for i, name in enumerate(names):
        check_network_name(name, f"{field}[{i}]")
        if name in names[:i]:
            raise InvalidArgument(
                f"{field}[{i}]: network {name} asked for twice (one NIC per network)", field=f"{field}[{i}]"
            )
    return tuple(names)


def check_bridge(value: str, field: str = "bridge") -> str:
    if not isinstance(value, str) or not _BRIDGE.fullmatch(value):
        raise InvalidArgument(
            f"{field} {shown(value)} must be a Linux interface name of 1-15 characters", field=field
        )
    return value


def default_network(networks: Sequence[ProviderNetwork]) -> ProviderNetwork:
    return next(n for n in networks if n.default)


def _ipv4(value: object, where: str) -> Ipv4Subnet:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{where} must be an object with cidr, gateway and pool", field=where)
    cidr = _network(value.get("cidr"), f"{where}.cidr", ipaddress.IPv4Network)
    if cidr.prefixlen > 30:
        raise InvalidArgument(
            f"{where}.cidr {cidr} leaves no room for guests (at most /30)", field=f"{where}.cidr"
        )
    gateway = _address(value.get("gateway"), f"{where}.gateway", ipaddress.IPv4Address)
    usable = (cidr.network_address + 1, cidr.broadcast_address - 1)
    if not usable[0] <= gateway <= usable[1]:
        raise InvalidArgument(
            f"{where}.gateway {gateway} is not a host address of {cidr}", field=f"{where}.gateway"
        )
    pool = value.get("pool")
    if not isinstance(pool, list) or len(pool) != 2:
        raise InvalidArgument(f"{where}.pool must be [first, last] addresses", field=f"{where}.pool")
    start = _address(pool[0], f"{where}.pool", ipaddress.IPv4Address)
    end = _address(pool[1], f"{where}.pool", ipaddress.IPv4Address)
    if start > end:
        raise InvalidArgument(f"{where}.pool starts at {start}, after its end {end}", field=f"{where}.pool")
    if not (usable[0] <= start and end <= usable[1]):
        raise InvalidArgument(
            f"{where}.pool {start}-{end} is not inside the host addresses of {cidr} "
            f"({usable[0]}-{usable[1]})",
            field=f"{where}.pool",
        )
    if start <= gateway <= end:
        raise InvalidArgument(
            f"{where}.pool {start}-{end} holds the gateway {gateway}", field=f"{where}.pool"
        )
    return Ipv4Subnet(cidr, gateway, start, end)


def _ipv6(value: object, where: str) -> Ipv6Subnet:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{where} must be an object with prefix and gateway", field=where)
    prefix = _network(value.get("prefix"), f"{where}.prefix", ipaddress.IPv6Network)
    if prefix.prefixlen != 64:
        raise InvalidArgument(
            f"{where}.prefix {prefix} must be a /64 (guests take SLAAC EUI-64 addresses)",
            field=f"{where}.prefix",
        )
    gateway = _address(value.get("gateway"), f"{where}.gateway", ipaddress.IPv6Address)
    if gateway not in prefix and not gateway.is_link_local:
        raise InvalidArgument(
            f"{where}.gateway {gateway} is neither in {prefix} nor link-local", field=f"{where}.gateway"
        )
    return Ipv6Subnet(prefix, gateway)


def _dns(value: object, where: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    if not isinstance(value, list) or len(value) > MAX_DNS:
        raise InvalidArgument(f"{where} must be a list of at most {MAX_DNS} addresses", field=where)
    out = []
    for i, item in enumerate(value):
        try:
            out.append(ipaddress.ip_address(_text(item, f"{where}[{i}]")))
        except ValueError:
            raise InvalidArgument(
                f"{where}[{i}] {shown(item)} is not an IP address", field=f"{where}[{i}]"
            ) from None
    return tuple(out)


def _check_together(networks: Sequence[ProviderNetwork]) -> None:
    for what in ("name", "bridge"):
        first: dict[str, int] = {}
        for i, n in enumerate(networks):
            key = getattr(n, what)
            if key in first:
                raise InvalidArgument(
                    f"networks[{i}].{what} {key} is declared twice (first at networks[{first[key]}])",
                    field=f"networks[{i}].{what}",
                )
            first[key] = i
    for j, b in enumerate(networks):
        for i, a in enumerate(networks[:j]):
            # Whole subnets, not only pools: two networks sharing addresses could not be told apart.
            if a.ipv4 and b.ipv4 and a.ipv4.cidr.overlaps(b.ipv4.cidr):
                raise InvalidArgument(
                    f"networks[{j}].ipv4.cidr {b.ipv4.cidr} overlaps networks[{i}] ({a.name}, {a.ipv4.cidr})",
                    field=f"networks[{j}].ipv4.cidr",
                )
            if a.ipv6 and b.ipv6 and a.ipv6.prefix.overlaps(b.ipv6.prefix):
                raise InvalidArgument(
                    f"networks[{j}].ipv6.prefix {b.ipv6.prefix} overlaps networks[{i}] ({a.name})",
                    field=f"networks[{j}].ipv6.prefix",
                )
    defaults = sum(1 for n in networks if n.default)
    if defaults != 1:
        raise InvalidArgument(f"exactly one network must be the default; {defaults} are", field="networks")


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where} is required (a string)", field=where)
    return value


def _network(value: object, where: str, kind: Any) -> Any:
    text = _text(value, where)
    try:
        return kind(text, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"{where} {shown(text)} is not a valid prefix: {exc}", field=where) from None


def _address(value: object, where: str, kind: Any) -> Any:
    text = _text(value, where)
    try:
        return kind(text)
    except ValueError:
        raise InvalidArgument(f"{where} {shown(text)} is not a valid address", field=where) from None
