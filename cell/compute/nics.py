"""The NICs of a spawn spec (Agent API) as the host uses them: checked, then turned into the domain's
interfaces and the config drive's attachments. The controller is trusted but not assumed right: a NIC
that does not hold together (a MAC that is not one, an address outside its subnet, a bridge name
Linux would refuse) is refused here, naming the field, and the build fails with that fault instead of
a guest coming up with a network it cannot use. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from cellfed.v1 import agent_pb2

from cell.compute.domain_spec import Nic
from cell.compute.network_data import Attachment
from fedlib.errors import InvalidArgument
from fedlib.networks import MAX_NETWORKS, parse_network


def attachments(nics: Sequence[agent_pb2.Nic]) -> tuple[Attachment, ...]:
    if len(nics) > MAX_NETWORKS:
        raise InvalidArgument(f"nics: at most {MAX_NETWORKS}, not {len(nics)}", field="nics")
    return tuple(_attachment(n, f"nics[{i}]") for i, n in enumerate(nics))


def domain_nics(found: Sequence[Attachment]) -> tuple[Nic, ...]:
    return tuple(Nic(a.mac, a.network.bridge) for a in found)


def _attachment(nic: agent_pb2.Nic, where: str) -> Attachment:
    declaration: dict[str, object] = {"name": nic.network, "bridge": nic.bridge, "dns": list(nic.dns)}
    ipv4 = None
    if nic.ipv4_address:
        # The pool is the one address this guest holds: parse_network then checks that it is a host
        # address of the subnet and not the gateway.
        declaration["ipv4"] = {"cidr": nic.ipv4_cidr, "gateway": nic.ipv4_gateway,
                               "pool": [nic.ipv4_address, nic.ipv4_address]}  # fmt: skip
    if nic.ipv6_prefix:
        declaration["ipv6"] = {"prefix": nic.ipv6_prefix, "gateway": nic.ipv6_gateway}
    network = parse_network(declaration, where)
    if network.ipv4 is not None:
        ipv4 = ipaddress.IPv4Address(nic.ipv4_address)
    try:
        return Attachment(network, nic.mac, ipv4)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}.mac: {exc.message}", field=f"{where}.mac") from None
