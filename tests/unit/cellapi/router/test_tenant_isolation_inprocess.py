"""Tenant isolation at both layers, in one process (tests.inprocess.harness): the cell refuses any
tenant-scoped call that names no tenant (there is no "every tenant" path a router's certificate could
open), and the router withholds operator-only fields (the compute host) from readers without admin."""

from __future__ import annotations

import grpc
import pytest
from cellfed.v1 import cell_pb2, cell_pb2_grpc, common_pb2, compute_pb2, compute_pb2_grpc

from cellapi.auth import bearer_interceptors
from fedrpc.channel import open_channel
from tests.inprocess.harness import SITES, Harness, cells, create_request


async def test_the_cell_refuses_every_tenant_scoped_call_without_a_tenant() -> None:
    async with Harness.running(SITES, cells(), routers=["par1"]) as h:
        inst = await h.api("par1").CreateInstance(create_request("mine"))
        await h.indexed(inst.instance_id, status="ACTIVE")
        async with open_channel(h.cells["par1-c1"].address) as channel:
            stub = cell_pb2_grpc.CellServiceStub(channel)
            unscoped = cell_pb2.CellInstanceRequest(instance_id=inst.instance_id)  # no tenant
            calls = {
                "GetInstance": stub.GetInstance(unscoped, timeout=3),
                "DeleteInstance": stub.DeleteInstance(unscoped, timeout=3),
                "StopInstance": stub.StopInstance(unscoped, timeout=3),
                "BatchGetInstances": stub.BatchGetInstances(
                    cell_pb2.BatchGetInstancesRequest(instance_ids=[inst.instance_id]), timeout=3
                ),
                "ListInstances": stub.ListInstances(cell_pb2.CellListInstancesRequest(), timeout=3),
            }
            for method, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
                assert "tenant" in (err.value.details() or ""), method
            watch = stub.WatchInstance(unscoped, timeout=3)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in watch:
                    pass
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            # Another tenant named: the instance reads as missing, in a batch as in a get.
            other = await stub.BatchGetInstances(
                cell_pb2.BatchGetInstancesRequest(tenant="other", instance_ids=[inst.instance_id]), timeout=3
            )
            assert list(other.missing_ids) == [inst.instance_id] and not other.instances
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetInstance(
                    cell_pb2.CellInstanceRequest(instance_id=inst.instance_id, tenant="other")
                )
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        got = await h.api("par1").GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert got.status == common_pb2.ACTIVE  # none of the refused calls did anything to it


async def test_only_an_admin_reader_sees_which_host_runs_an_instance() -> None:
    async with Harness.running(SITES, cells(), routers=["par1"]) as h:
        user = h.api("par1")
        inst = await user.CreateInstance(create_request("where"))
        await h.indexed(inst.instance_id, status="ACTIVE")
        admin_token = h.token("acme", roles=("admin", "user"))
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{h.routers['par1'].port}", interceptors=bearer_interceptors(admin_token)
        ) as channel:
            admin = compute_pb2_grpc.ComputeServiceStub(channel)
            seen = await admin.GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
            assert seen.host  # the operator sees it
            listed = await admin.ListInstances(compute_pb2.ListInstancesRequest(page_size=10))
            assert [bool(i.host) for i in listed.instances if i.instance_id == inst.instance_id] == [True]
        got = await user.GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
        assert got.instance_id == inst.instance_id and got.host == ""
        listed = await user.ListInstances(compute_pb2.ListInstancesRequest(page_size=10))
        assert [i.host for i in listed.instances] == [""] * len(listed.instances) and listed.instances
        stopped = await user.StopInstance(compute_pb2.InstanceActionRequest(name=inst.name))
        assert stopped.host == ""
        watch = user.WatchInstance(compute_pb2.WatchInstanceRequest(name=inst.name), timeout=1)
        events = []
        with pytest.raises(grpc.aio.AioRpcError):  # the watch ends at its deadline
            async for event in watch:
                events.append(event)
        assert events and all(e.instance.host == "" for e in events)
