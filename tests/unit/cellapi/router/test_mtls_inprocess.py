"""The request path under mTLS, in one process (tests.inprocess.harness with tls=True): users reach routers
over TLS with their token, routers reach cells and agents their controller's own Agent API port with
certificates of the harness's federation PKI; each server admits only the roles its rule names; the
whole PKI rotates (every region CA, every leaf) under a running load with no failed request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from cellfed.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    cell_pb2,
    cell_pb2_grpc,
    common_pb2,
    compute_pb2,
    compute_pb2_grpc,
)

from cellapi.client import Client
from fedlib.errors import Unavailable
from fedlib.pki.identity import Role
from fedrpc.channel import open_channel
from localfed.pki import leaf_on_disk, served_leaf
from tests.inprocess.harness import SITES, Harness, HostSpec, cells, create_request
from tests.inprocess.pki import HarnessPki


async def test_create_get_list_and_delete_work_with_every_link_under_mtls() -> None:
    async with Harness.running(SITES, cells(), tls=True) as h:
        made = {site: await h.api(site).CreateInstance(create_request(f"tls-{site}")) for site in h.routers}
        assert {site: i.cell for site, i in made.items()} == {s: f"{s}-c1" for s in h.routers}
        for inst in made.values():
            await h.indexed(inst.instance_id, status="ACTIVE")  # the agent got it over its own mTLS port
        got = await h.api("nyc1").GetInstance(compute_pb2.GetInstanceRequest(name=made["par1"].name))
        assert (got.status, got.site) == (common_pb2.ACTIVE, "par1")
        listed = await h.api("ams1").ListInstances(compute_pb2.ListInstancesRequest(page_size=50))
        assert {i.instance_id for i in listed.instances} >= {i.instance_id for i in made.values()}
        gone = made["nyc1"]
        await h.api("par1").DeleteInstance(compute_pb2.DeleteInstanceRequest(name=gone.name))

        async def deleted() -> bool:  # the cell's own record: the delete crossed router -> cell -> agent
            rows = {r.instance_id: r.status for r in await h.cells["nyc1-c1"].records.load_instances()}
            return rows.get(gone.instance_id) == "DELETED"

        await h.until(deleted, f"{gone.instance_id} deleted")
        for cell in h.cells.values():
            running = cell.running
            assert running is not None and running.agent_port != running.port  # two ports, two APIs


async def _status_code(channel: grpc.aio.Channel) -> grpc.StatusCode:
    stub = cell_pb2_grpc.CellServiceStub(channel)
    try:
        await stub.GetCellStatus(cell_pb2.GetCellStatusRequest(), timeout=3)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_each_cell_port_admits_only_its_roles() -> None:
    async with Harness.running(SITES, cells(), tls=True) as h:
        assert h.pki is not None
        par1 = h.cells["par1-c1"]
        assert par1.running is not None
        cell_api, agent_api = f"127.0.0.1:{par1.running.port}", f"127.0.0.1:{par1.running.agent_port}"
        router = h.pki.client("eu-west", "ams1", Role.ROUTER, "r9")
        agent = h.pki.client("eu-west", "par1", Role.AGENT, "h9")
        stranger = h.pki.client("us-east", "nyc1", Role.AGENT, "h9")
        async with open_channel(cell_api, router.target("par1", Role.CELL)) as channel:
            assert await _status_code(channel) == grpc.StatusCode.OK  # any router of the federation
        async with open_channel(cell_api, agent.target("par1", Role.CELL)) as channel:
            assert (
                await _status_code(channel) == grpc.StatusCode.PERMISSION_DENIED
            )  # an agent: not the Cell API
        async with open_channel(cell_api) as channel:  # plaintext to a TLS port: no session at all
            assert await _status_code(channel) == grpc.StatusCode.UNAVAILABLE
        async with open_channel(agent_api, router.target("par1", Role.CELL)) as channel:
            assert await _status_code(channel) == grpc.StatusCode.UNIMPLEMENTED  # the Cell API is not here
        for client, expected in (
            (router, grpc.StatusCode.PERMISSION_DENIED),
            (stranger, grpc.StatusCode.PERMISSION_DENIED),
        ):
            async with open_channel(agent_api, client.target("par1", Role.CELL)) as channel:
                call = agent_pb2_grpc.AgentServiceStub(channel).Connect(timeout=3)
                await call.write(agent_pb2.AgentMessage(hello=agent_pb2.AgentHello(host="intruder")))
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call.read()
                assert err.value.code() == expected
        assert "intruder" not in {host.host for host in (await par1.status()).hosts}


async def test_a_user_without_tls_cannot_reach_a_tls_router() -> None:
    async with (
        Harness.running(SITES, cells(), routers=["par1"], tls=True) as h,
        grpc.aio.insecure_channel(f"127.0.0.1:{h.routers['par1'].port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            request = compute_pb2.GetInstanceRequest(name="instances/par1-c1.x")
            await compute_pb2_grpc.ComputeServiceStub(channel).GetInstance(request, timeout=3)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("attempt", range(3))
async def test_the_whole_pki_rotates_under_load_with_no_failed_request(attempt: int) -> None:
    roomy = {
        s.site_id: (HostSpec(f"{s.site_id}-h1", vcpus=4096, memory_mb=8_388_608, disk_gb=81_920),)
        for s in SITES
    }
    async with Harness.running(SITES, cells(**roomy), tls=True) as h:
        assert h.pki is not None
        failures: list[str] = []
        done = {"creates": 0, "gets": 0}
        stop = asyncio.Event()
        seed = [
            await h.api(site).CreateInstance(create_request(f"seed-{site}-{attempt}")) for site in h.routers
        ]

        async def load(site: str) -> None:
            n = 0
            api = h.api(site)
            while not stop.is_set():
                n += 1
                try:
                    await api.CreateInstance(create_request(f"load-{site}-{attempt}-{n}"))
                    done["creates"] += 1
                    for inst in seed:  # reads of every site's instance: every router -> cell link
                        await api.GetInstance(compute_pb2.GetInstanceRequest(name=inst.name))
                        done["gets"] += 1
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"{site} #{n}: {exc.code().name} {exc.details()}")

        probe = h.pki.component("eu-west", "par1", Role.ROUTER, "served-check")
        fronts = {c.cell_id: c.link.port for c in h.cells.values()}
        served_before = {
            cell_id: await asyncio.to_thread(served_leaf, port, probe.files)
            for cell_id, port in fronts.items()
        }
        workers = [asyncio.create_task(load(site)) for site in h.routers]
        await asyncio.sleep(0.3)
        before = dict(done)
        h.pki.rotate()  # every region CA replaced, every leaf re-issued under it, in the running files
        await asyncio.sleep(0.6)  # load runs on across the rotation
        for cell in h.cells.values():  # new channels: the harness's own, the routers' and the probes'
            await cell.close_channel()
        await h.sync()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*workers)
        assert failures == []
        assert done["creates"] > before["creates"] and done["gets"] > before["gets"]  # load ran across it
        # Every router now dials with its new certificate (its Dialer rebuilt its channels), and every
        # cell's server handed its new one to the connections made since.
        for site, router in h.routers.items():
            tls = h.pki.component(h.sites[site].region, site, Role.ROUTER, "r1")
            assert tls.generation >= 1, site
            assert router.cells.dialer.generations() == {tls.generation}, site  # every channel rebuilt
        for cell in h.cells.values():
            tls = h.pki.component(cell.site.region, cell.site.site_id, Role.CELL, cell.cell_id)
            assert tls.generation >= 1, cell.cell_id
            served = await asyncio.to_thread(served_leaf, fronts[cell.cell_id], probe.files)
            assert served == leaf_on_disk(tls.files) != served_before[cell.cell_id], cell.cell_id


async def test_the_sdk_talks_tls_to_a_router_it_trusts_and_refuses_one_it_does_not(tmp_path: Path) -> None:
    async with Harness.running(SITES, cells(), routers=["par1"], tls=True) as h:
        assert h.pki is not None
        endpoint = f"127.0.0.1:{h.routers['par1'].port}"
        client = Client([endpoint], h.token(), ca=h.pki.ca_pem, timeout_s=5)
        try:
            made = await client.create(create_request("via-sdk"))
            assert (await client.get(made.instance_id)).instance_id == made.instance_id
        finally:
            await client.close()
        other = HarnessPki(tmp_path, {"eu-west"})  # another federation's root: the router is not trusted
        stranger = Client([endpoint], h.token(), ca=other.ca_pem, timeout_s=5)
        try:
            with pytest.raises(Unavailable):
                await stranger.get(made.instance_id)
        finally:
            await stranger.close()
