"""The Federation API's host operations through a real router to a real cell, in one process
(tests.inprocess.harness, whose clock the test owns): list with leases, disable and enable, evacuation
refused until the silent host's lease has expired and fencing time has passed (saying when), then
allowed, rebuilding its instances on the other host as their next generation; admin only; bad names
and unknown hosts answered with the right status naming the field."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from cellfed.v1 import common_pb2, federation_pb2, federation_pb2_grpc

from cellapi.auth import bearer_interceptors
from fedrpc.status import error_from_rpc
from tests.inprocess.harness import SITES, Harness, HostSpec, cells, create_request

CELL = "sites/par1/cells/par1-c1"
TWO = (HostSpec("par1-h1"), HostSpec("par1-h2"))


def federation(h: Harness, roles: tuple[str, ...] = ("admin",)) -> federation_pb2_grpc.FederationServiceStub:
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{h.routers['par1'].port}", interceptors=bearer_interceptors(h.token("ops", roles))
    )
    h._channels.append(channel)
    return federation_pb2_grpc.FederationServiceStub(channel)


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_a_silent_host_is_evacuated_once_fenced_and_its_instances_rebuilt_elsewhere() -> None:
    async with Harness.running(SITES, cells(par1=TWO), routers=["par1"]) as h:
        fed = federation(h)
        made = [await h.api("par1").CreateInstance(create_request(f"vm-{n}", site="par1")) for n in range(4)]
        for inst in made:
            await h.indexed(inst.instance_id, status="ACTIVE")
        hosts = await fed.ListHosts(federation_pb2.ListHostsRequest(parent=CELL))
        assert [(v.host, v.up, v.lease_state) for v in hosts.hosts] == [
            ("par1-h1", True, "HELD"), ("par1-h2", True, "HELD"),
        ]  # fmt: skip
        assert hosts.hosts[0].name == f"{CELL}/hosts/par1-h1"
        lost = h.cells["par1-c1"].agents["par1-h1"]
        on_lost = set(lost.domains)
        assert on_lost and sum(v.instances for v in hosts.hosts) == 4
        lost.mode = "silent"  # cut off: no more heartbeats, so no renewals
        await h.advance(5)
        name = f"{CELL}/hosts/par1-h1"
        early = await rpc_error(fed.EvacuateHost(federation_pb2.EvacuateHostRequest(name=name)))
        assert early.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "evacuation is allowed in 43.0s" in (early.details() or "")
        for _ in range(3):
            await h.advance(15)  # 50 s after the last renewal: lease 30 + margin 3 + fencing 15 have passed
        listed = {
            v.host: v for v in (await fed.ListHosts(federation_pb2.ListHostsRequest(parent=CELL))).hosts
        }
        assert (listed["par1-h1"].lease_state, listed["par1-h1"].up) == ("FENCED", False)
        assert listed["par1-h1"].evacuable_in.ToMilliseconds() == 0
        done = await fed.EvacuateHost(federation_pb2.EvacuateHostRequest(name=name))
        assert {m.instance_id for m in done.moved} == on_lost and not done.stayed
        assert all(
            (m.to_host, m.generation, m.status) == ("par1-h2", 2, common_pb2.BUILDING) for m in done.moved
        )
        assert done.host.lease_state == "REVOKED"
        for iid in on_lost:  # the other host's agent got them in its desired state and runs them
            await h.indexed(iid, status="ACTIVE")
        assert on_lost <= set(h.cells["par1-c1"].agents["par1-h2"].domains)
        again = await fed.EvacuateHost(federation_pb2.EvacuateHostRequest(name=name))  # a retry
        assert not again.moved and not again.stayed


async def test_disable_and_enable_a_host() -> None:
    async with Harness.running(SITES, cells(par1=TWO), routers=["par1"]) as h:
        fed = federation(h)
        name = f"{CELL}/hosts/par1-h2"
        off = await fed.DisableHost(federation_pb2.HostRequest(name=name, reason="maintenance"))
        assert off.disabled and off.name == name
        made = [await h.api("par1").CreateInstance(create_request(f"vm-{n}", site="par1")) for n in range(3)]
        for inst in made:
            await h.indexed(inst.instance_id, status="ACTIVE")
        assert not h.cells["par1-c1"].agents["par1-h2"].domains  # out of placement
        on = await fed.EnableHost(federation_pb2.HostRequest(name=name))
        assert not on.disabled


@pytest.mark.parametrize(
    ("call", "code", "field"),
    [
        (
            lambda f: f.ListHosts(federation_pb2.ListHostsRequest(parent="par1-c1")),
            "INVALID_ARGUMENT",
            "parent",
        ),
        (
            lambda f: f.ListHosts(federation_pb2.ListHostsRequest(parent="sites/par1/cells/nope")),
            "NOT_FOUND",
            "cell",
        ),
        (
            lambda f: f.DisableHost(federation_pb2.HostRequest(name=f"{CELL}/hosts")),
            "INVALID_ARGUMENT",
            "name",
        ),
        (
            lambda f: f.DisableHost(federation_pb2.HostRequest(name=f"{CELL}/hosts/nope")),
            "NOT_FOUND",
            "host nope",
        ),
        (
            lambda f: f.EvacuateHost(federation_pb2.EvacuateHostRequest(name=f"{CELL}/hosts/nope")),
            "NOT_FOUND",
            "host nope",
        ),
        (
            lambda f: f.EvacuateHost(
                federation_pb2.EvacuateHostRequest(name=f"{CELL}/hosts/par1-h1", force=True)
            ),
            "FAILED_PRECONDITION",
            "powered off",
        ),
    ],
)
async def test_bad_requests_name_the_field(call: object, code: str, field: str) -> None:
    """Bad input carries the field (BadRequest); a missing or refused thing is named in the message."""
    async with Harness.running(SITES, cells(par1=TWO), routers=["par1"]) as h:
        err = await rpc_error(call(federation(h)))  # type: ignore[operator]
        assert err.code().name == code
        if code == "INVALID_ARGUMENT":
            assert error_from_rpc(err, target="router").field == field
        else:
            assert field in (err.details() or "")


async def test_host_operations_need_the_admin_role() -> None:
    async with Harness.running(SITES, cells(par1=TWO), routers=["par1"]) as h:
        err = await rpc_error(
            federation(h, roles=("user",)).ListHosts(federation_pb2.ListHostsRequest(parent=CELL))
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
