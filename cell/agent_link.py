"""Turns the controller's decisions into Agent API messages for one host (commands and desired state).
The controller never builds protobufs itself; the hub only moves them."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import asdict

from cellfed.v1 import agent_pb2, common_pb2

from cell.agent_hub import AgentHub
from cell.lifecycle import AgentCommand, State
from cell.records import CellInstance

# What the host should be doing for each stored state; states absent here want no domain at all.
_DESIRED_POWER = {
    State.BUILDING: agent_pb2.RUNNING,
    State.ACTIVE: agent_pb2.RUNNING,
    State.REBOOTING: agent_pb2.RUNNING,
    State.STOPPED: agent_pb2.SHUTOFF,
}


class AgentLink:
    def __init__(self, hub: AgentHub, cell_id: str) -> None:
        self._hub = hub
        self._cell_id = cell_id
        self._ids = itertools.count(1)
        self.pending: dict[str, tuple[str, AgentCommand]] = {}  # command id -> (instance id, command)

    def command(self, host_id: str, inst: CellInstance, command: AgentCommand) -> bool:
        command_id = f"{inst.spec.instance_id}:{command.value}:{next(self._ids)}"
        message = agent_pb2.AgentCommand(command_id=command_id)
        iid = inst.spec.instance_id
        if command is AgentCommand.BUILD:
            message.spawn.CopyFrom(self.spawn_spec(inst))
        elif command is AgentCommand.START:
            message.start_instance_id = iid
        elif command is AgentCommand.STOP:
            message.stop_instance_id = iid
        elif command is AgentCommand.REBOOT:
            message.reboot_instance_id = iid
        else:
            message.destroy_instance_id = iid
        sent = self._hub.send(host_id, agent_pb2.ControllerMessage(command=message))
        if sent:
            self.pending[command_id] = (iid, command)
        return sent

    def desired_state(self, host_id: str, instances: Iterable[CellInstance], now_ms: int) -> bool:
        desired = agent_pb2.DesiredState()
        desired.generated_at.FromMilliseconds(now_ms)
        for inst in instances:
            power = _DESIRED_POWER.get(inst.record.state)
            if power is not None and inst.record.host_id == host_id:
                desired.domains.append(agent_pb2.DesiredDomain(spec=self.spawn_spec(inst), power=power))
        return self._hub.send(host_id, agent_pb2.ControllerMessage(desired=desired))

    def spawn_spec(self, inst: CellInstance) -> agent_pb2.SpawnDomain:
        spec = inst.spec
        flavor = {k: v for k, v in asdict(spec.flavor).items() if v is not None}
        return agent_pb2.SpawnDomain(
            instance_id=spec.instance_id,
            tenant=spec.tenant,
            flavor=common_pb2.Flavor(**{k: v for k, v in flavor.items() if k in _FLAVOR_FIELDS}),
            image=spec.image,
            user_data=spec.user_data,
            spec_version=1,
            cell=self._cell_id,
        )


_FLAVOR_FIELDS = frozenset(common_pb2.Flavor.DESCRIPTOR.fields_by_name)
