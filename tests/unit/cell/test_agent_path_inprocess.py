"""The one level-triggered agent path, through a real router and cell in one process: a user's request is
a change of desired state that reaches the host at once, and what the host reports closes it. A request
accepted while the host's agent is away is carried out when it comes back (with commands it was dropped,
and the delete stayed DELETING with the domain running until the orphan grace)."""

from __future__ import annotations

from cellfed.v1 import common_pb2, compute_pb2

from tests.inprocess.harness import SITES, Harness, cells, create_request

HOST = ("par1-c1", "par1-c1-h1")


async def test_a_delete_accepted_while_the_agent_is_away_is_carried_out_when_it_returns() -> None:
    async with Harness.running(SITES, cells()) as h:
        inst = await h.api("par1").CreateInstance(create_request("gone-while-away"))
        await h.indexed(inst.instance_id, status="ACTIVE")
        agent = h.cells[HOST[0]].agents[HOST[1]]
        assert inst.instance_id in agent.domains
        await agent.disconnect()
        deleting = await h.api("par1").DeleteInstance(compute_pb2.DeleteInstanceRequest(name=inst.name))
        assert deleting.status == common_pb2.DELETING
        assert inst.instance_id in agent.domains  # nobody told the host yet
        await h.add_host(HOST[0], agent.spec)  # the agent reconnects with the domain still defined

        async def gone() -> bool:
            return inst.instance_id not in agent.domains

        await h.until(gone, "the domain removed on reconnect")

        async def deleted() -> bool:
            return (await h.cells[HOST[0]].records.get_instance(inst.instance_id)).status == "DELETED"

        await h.until(deleted, "the instance DELETED in the cell's records")


async def test_a_reboot_is_a_generation_the_host_applies_once() -> None:
    async with Harness.running(SITES, cells()) as h:
        inst = await h.api("par1").CreateInstance(create_request("reboot-me"))
        await h.indexed(inst.instance_id, status="ACTIVE")
        agent = h.cells[HOST[0]].agents[HOST[1]]
        rebooting = await h.api("par1").RebootInstance(compute_pb2.InstanceActionRequest(name=inst.name))
        assert rebooting.status == common_pb2.REBOOTING
        await h.indexed(inst.instance_id, status="ACTIVE")  # the host reported the generation applied
        assert agent.rebooted[inst.instance_id] == rebooting.version
        again = await h.api("par1").RebootInstance(compute_pb2.InstanceActionRequest(name=inst.name))
        await h.indexed(inst.instance_id, status="ACTIVE")
        assert agent.rebooted[inst.instance_id] == again.version > rebooting.version


async def test_a_reboot_the_host_cannot_carry_out_is_error_with_its_fault() -> None:
    async with Harness.running(SITES, cells()) as h:
        inst = await h.api("par1").CreateInstance(create_request("reboot-fails"))
        await h.indexed(inst.instance_id, status="ACTIVE")
        h.cells[HOST[0]].agents[HOST[1]].mode = "fail"
        await h.api("par1").RebootInstance(compute_pb2.InstanceActionRequest(name=inst.name))
        await h.indexed(inst.instance_id, status="ERROR")
        got = await h.api("par1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert got.fault == "REBOOT_FAILED: fake: libvirt refused"
