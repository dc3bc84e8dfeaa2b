"""An instance as the controller keeps it: the user's spec (immutable after build) plus the lifecycle
record (cell.lifecycle.Instance), and the conversion to and from the cell keyspace row. Pure."""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from cell.lifecycle import Fault, Instance, State
from cell.placement import Flavor
from fedlib.addresses import NicAddress
from fedlib.macs import eui64_address
from fedlib.networks import ProviderNetwork
from replication.cell_records import InstanceRow


@dataclass(frozen=True)
class ClaimRef:
    """The router's idempotency claim a build answered (cell.request_claims uses it)."""

    region: str
    created_at_ms: int
    fingerprint: str
    assigned_at_ms: int  # when the claim came to name this instance; 0: the router did not know
    expires_at_ms: int  # when the claim's TTL ends: past it, there is nothing left to settle


@dataclass(frozen=True)
class InstanceSpec:
    instance_id: str
    tenant: str
    display_name: str
    flavor: Flavor
    image: str
    created_ms: int
    user_data: bytes = b""
    labels: dict[str, str] = field(default_factory=dict)
    request_id: str = ""
    spread_group: str = ""
    claim: ClaimRef | None = None
    # The provider networks asked for, one NIC each, in order; empty: the cell's default network.
    networks: tuple[str, ...] = ()

    def same_request(self, other: InstanceSpec) -> bool:
        """A repeated build of the same id must ask for the same thing (created_ms aside)."""
        mine = (self.tenant, self.display_name, self.flavor, self.image, self.user_data, self.labels,
                self.networks)  # fmt: skip
        theirs = (other.tenant, other.display_name, other.flavor, other.image, other.user_data, other.labels,
                  other.networks)  # fmt: skip
        return mine == theirs


@dataclass(frozen=True)
class Port:
    """One NIC of an instance, decided by the cell at its build and kept for its whole life (an
    evacuated instance comes back with the same MAC and address): the MAC from the cell's sequence
    (fedlib.macs), the IPv4 address from the network's pool (cell.ipam). Its IPv6 address, where the
    network has a /64, is the MAC's EUI-64 one, derived, never stored."""

    network: str
    mac: str
    mac_sequence: int
    ipv4: ipaddress.IPv4Address | None


def nic_addresses(ports: Sequence[Port], networks: Sequence[ProviderNetwork]) -> tuple[NicAddress, ...]:
    """The ports as the world outside the cell sees them, the IPv6 address derived from each MAC."""
    by_name = {n.name: n for n in networks}
    out = []
    for p in ports:
        net = by_name.get(p.network)
        ipv6 = eui64_address(net.ipv6.prefix, p.mac) if net is not None and net.ipv6 is not None else None
        out.append(NicAddress(p.network, p.mac, p.ipv4, ipv6))
    return tuple(out)


@dataclass(frozen=True)
class CellInstance:
    spec: InstanceSpec
    record: Instance
    holds_claim: bool  # whether the capacity ledger holds a claim for it (rebuilt from this on restart)
    ports: tuple[Port, ...] = ()


def to_row(inst: CellInstance) -> InstanceRow:
    spec, rec = inst.spec, inst.record
    extra = {
        "flavor": asdict(spec.flavor),
        "user_data": base64.b64encode(spec.user_data).decode(),
        "request_id": spec.request_id,
        "spread_group": spec.spread_group,
        "holds_claim": inst.holds_claim,
        "generation": rec.generation,
    }
    if spec.claim is not None:
        extra["request_claim"] = asdict(spec.claim)
    if spec.networks:
        extra["networks"] = list(spec.networks)
    if inst.ports:
        extra["ports"] = [
            {"network": p.network, "mac": p.mac, "mac_sequence": p.mac_sequence,
             "ipv4": str(p.ipv4) if p.ipv4 is not None else None}
            for p in inst.ports
        ]  # fmt: skip
    return InstanceRow(
        instance_id=spec.instance_id,
        tenant=spec.tenant,
        name=spec.display_name,
        flavor=spec.flavor.name,
        image=spec.image,
        host_id=rec.host_id,
        status=rec.state.value,
        version=rec.version,
        created_ms=spec.created_ms,
        updated_ms=rec.updated_ms,
        fault_code=rec.fault.code if rec.fault else "",
        fault_message=rec.fault.message if rec.fault else "",
        spec_json=json.dumps(extra, sort_keys=True),
        labels=dict(spec.labels),
    )


def from_row(row: InstanceRow) -> CellInstance:
    extra = json.loads(row.spec_json or "{}")
    spec = InstanceSpec(
        instance_id=row.instance_id,
        tenant=row.tenant,
        display_name=row.name,
        flavor=Flavor(**extra["flavor"]),
        image=row.image,
        created_ms=row.created_ms,
        user_data=base64.b64decode(extra.get("user_data", "")),
        labels=dict(row.labels),
        request_id=extra.get("request_id", ""),
        spread_group=extra.get("spread_group", ""),
        claim=ClaimRef(**extra["request_claim"]) if "request_claim" in extra else None,
        networks=tuple(extra.get("networks", ())),
    )
    fault = Fault(row.fault_code, row.fault_message) if row.fault_code else None
    record = Instance(row.instance_id, row.host_id, State(row.status), row.version, row.updated_ms, fault,
                      int(extra.get("generation", 1)))  # fmt: skip
    ports = tuple(
        Port(p["network"], p["mac"], int(p["mac_sequence"]),
             ipaddress.IPv4Address(p["ipv4"]) if p.get("ipv4") else None)
        for p in extra.get("ports", ())
    )  # fmt: skip
    return CellInstance(spec, record, bool(extra.get("holds_claim", False)), ports)
