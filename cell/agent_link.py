"""Turns the controller's state into Agent API messages for one host: its whole desired state. There are
no commands: what a user asks for is a change of state, and the host converges on the state.
The controller never builds protobufs itself; the hub only moves them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cellfed.v1 import agent_pb2

from cell.agent_hub import AgentHub
from cell.events import LeaseGrant
from cell.leases import LeaseSettings
from cell.lifecycle import State, reboot_generation
from cell.records import CellInstance, Port
from fedlib.networks import ProviderNetwork
from fedrpc.flavors import flavor_to_proto

# What the host should be doing for each stored state. DELETING and ERROR want the domain gone at once
# (an ERROR instance is not serving anyone; delete is all it allows). DELETED is no longer the host's
# business: a leftover domain is an orphan, removed after the agent's grace.
_DESIRED_POWER = {
    State.BUILDING: agent_pb2.RUNNING,
    State.ACTIVE: agent_pb2.RUNNING,
    State.REBOOTING: agent_pb2.RUNNING,
    State.STOPPED: agent_pb2.SHUTOFF,
    State.DELETING: agent_pb2.NO_DOMAIN,
    State.ERROR: agent_pb2.NO_DOMAIN,
}


class AgentLink:
    def __init__(self, hub: AgentHub, cell_id: str, networks: Sequence[ProviderNetwork] = ()) -> None:
        self._hub = hub
        self._cell_id = cell_id
        self._networks: Mapping[str, ProviderNetwork] = {n.name: n for n in networks}

    def desired_state(
        self,
        host_id: str,
        instances: Iterable[CellInstance],
        now_ms: int,
        superseded: Sequence[tuple[str, int]] = (),
    ) -> bool:
        desired = agent_pb2.DesiredState()
        desired.generated_at.FromMilliseconds(now_ms)
        for inst in instances:
            power = _DESIRED_POWER.get(inst.record.state)
            if power is not None and inst.record.host_id == host_id:
                domain = agent_pb2.DesiredDomain(
                    power=power, reboot_generation=reboot_generation(inst.record)
                )
                domain.spec.CopyFrom(self.spawn_spec(inst))
                desired.domains.append(domain)
        for instance_id, generation in superseded:
            desired.superseded.add(instance_id=instance_id, generation=generation)
        return self._hub.send(host_id, agent_pb2.ControllerMessage(desired=desired))

    def lease(self, grant: LeaseGrant, settings: LeaseSettings) -> bool:
        lease = agent_pb2.Lease(
            generation=grant.generation, seq=grant.seq, lease_ms=settings.lease_ms, fence_ms=settings.fence_ms
        )
        return self._hub.send(grant.host_id, agent_pb2.ControllerMessage(lease=lease))

    def lease_lost(self, host_id: str, reason: str) -> bool:
        return self._hub.send(
            host_id, agent_pb2.ControllerMessage(lease_lost=agent_pb2.LeaseLost(reason=reason))
        )

    def spawn_spec(self, inst: CellInstance) -> agent_pb2.SpawnDomain:
        spec = inst.spec
        return agent_pb2.SpawnDomain(
            instance_id=spec.instance_id,
            tenant=spec.tenant,
            flavor=flavor_to_proto(spec.flavor),
            image=spec.image,
            user_data=spec.user_data,
            spec_version=1,
            cell=self._cell_id,
            generation=inst.record.generation,
            nics=[self._nic(p) for p in inst.ports],
        )

    def _nic(self, port: Port) -> agent_pb2.Nic:
        net = self._networks[port.network]  # a port is only ever made on a declared network
        nic = agent_pb2.Nic(network=net.name, bridge=net.bridge, mac=port.mac, dns=[str(d) for d in net.dns])
        if net.ipv4 is not None and port.ipv4 is not None:
            nic.ipv4_address, nic.ipv4_cidr = str(port.ipv4), str(net.ipv4.cidr)
            nic.ipv4_gateway = str(net.ipv4.gateway)
        if net.ipv6 is not None:
            nic.ipv6_prefix, nic.ipv6_gateway = str(net.ipv6.prefix), str(net.ipv6.gateway)
        return nic
