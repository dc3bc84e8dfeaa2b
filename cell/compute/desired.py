"""The agent's copy of the controller's desired state for this host.

The controller pushes the whole set on connect and periodically; commands arrive in between on the same
ordered stream and are newer than the last set. Each command therefore also edits this copy, so a
reconcile pass between two pushes never undoes a command (restarting a VM just stopped, or calling a
just-built one an orphan). Pure."""

from __future__ import annotations

from cellfed.v1 import agent_pb2


def apply_command(desired: agent_pb2.DesiredState, command: agent_pb2.AgentCommand) -> None:
    action = command.WhichOneof("action")
    if action == "spawn":
        _set(desired, command.spawn.instance_id, agent_pb2.RUNNING, command.spawn)
    elif action == "start_instance_id":
        _set(desired, command.start_instance_id, agent_pb2.RUNNING)
    elif action == "reboot_instance_id":
        _set(desired, command.reboot_instance_id, agent_pb2.RUNNING)
    elif action == "stop_instance_id":
        _set(desired, command.stop_instance_id, agent_pb2.SHUTOFF)
    elif action == "destroy_instance_id":
        kept = [d for d in desired.domains if d.spec.instance_id != command.destroy_instance_id]
        del desired.domains[:]
        desired.domains.extend(kept)


def _set(
    desired: agent_pb2.DesiredState, instance_id: str, power: int, spec: agent_pb2.SpawnDomain | None = None
) -> None:
    for domain in desired.domains:
        if domain.spec.instance_id == instance_id:
            domain.power = power  # type: ignore[assignment]
            if spec is not None:
                domain.spec.CopyFrom(spec)
            return
    if spec is not None:  # a power command for an instance the set does not know yet changes nothing
        desired.domains.append(agent_pb2.DesiredDomain(spec=spec, power=power))  # type: ignore[arg-type]
