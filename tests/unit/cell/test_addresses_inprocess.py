"""Addresses through real routers and cells in one process (tests.inprocess.harness): every cell of the
harness declares its own provider network, so every create in these tests gets a port. A cell whose
pool is full refuses definitely and the router spills the create to the next site; a controller
restarted from its keyspace hands out no address or MAC it had handed out before; the free-address
gauge follows."""

from __future__ import annotations

import dataclasses
import ipaddress

import grpc
import pytest
from cellfed.v1 import compute_pb2, federation_pb2

from cell import upkeep
from cell.records import CellInstance, from_row
from fedlib.networks import parse_network
from tests.inprocess.harness import SITES, CellSpec, Harness, cells, create_request
from tests.unit.cellapi.router.test_hosts_inprocess import federation

TINY_POOL = parse_network({
    "name": "public", "bridge": "br-cellfed", "default": True,
    "ipv4": {"cidr": "203.0.113.0/29", "gateway": "203.0.113.1", "pool": ["203.0.113.2", "203.0.113.3"]},
})  # fmt: skip


async def stored(h: Harness, cell_id: str) -> list[CellInstance]:
    return [from_row(r) for r in await h.cells[cell_id].records.load_instances()]


async def test_a_full_pool_sends_the_create_to_the_next_site() -> None:
    specs = [dataclasses.replace(c, networks=(TINY_POOL,)) if c.site_id == "par1" else c for c in cells()]
    async with Harness.running(SITES, specs) as h:
        made = [await h.api("par1").CreateInstance(create_request(f"vm-{n}")) for n in range(3)]
        assert [i.cell for i in made] == ["par1-c1", "par1-c1", "ams1-c1"]
        par1 = {i.spec.display_name: i.ports for i in await stored(h, "par1-c1")}
        assert sorted(str(p[0].ipv4) for p in par1.values()) == ["203.0.113.2", "203.0.113.3"]
        (spilled,) = await stored(h, "ams1-c1")
        assert [str(p.ipv4) for p in spilled.ports] == ["203.0.113.74"]  # ams1's own /26 (site_network(1))
        running = h.cells["par1-c1"].running
        assert running is not None
        await upkeep.refresh_gauges(running.controller)
        free = running.controller.metrics.registry.get_sample_value(
            "cellfed_cell_network_addresses_free", {"cell": "par1-c1", "network": "public"}
        )
        assert free == 0


async def test_a_restarted_controller_hands_out_no_address_or_mac_twice() -> None:
    async with Harness.running(SITES, cells()) as h:
        api = h.api("par1")
        first = [await api.CreateInstance(create_request(f"before-{n}")) for n in range(3)]
        await api.DeleteInstance(compute_pb2.DeleteInstanceRequest(name=first[0].name))

        async def deleted() -> bool:
            return any(i.record.state.value == "DELETED" for i in await stored(h, "par1-c1"))

        await h.until(deleted, "the delete finished")
        await h.stop_cell("par1-c1")
        await h.start_cell(h.cells["par1-c1"].spec)  # same keyspace, a new controller
        await h.sync()
        for n in range(3):
            made = await api.CreateInstance(create_request(f"after-{n}"))
            assert made.cell == "par1-c1"
        rows = await stored(h, "par1-c1")
        live = [i for i in rows if i.record.state.value != "DELETED"]
        addresses = [p.ipv4 for i in live for p in i.ports]
        macs = [p.mac for i in rows for p in i.ports]
        assert len(live) == 5 and len(set(addresses)) == 5 and len(set(macs)) == 6
        gone = next(i for i in rows if i.record.state.value == "DELETED")
        assert gone.ports[0].ipv4 not in addresses  # still in quarantine
        # The restarted controller starts past the block its predecessor reserved (cell.controller).
        assert sorted(p.mac_sequence for i in rows for p in i.ports) == [0, 1, 2, 1025, 1026, 1027]


async def test_an_instance_shows_its_addresses_in_create_get_and_list() -> None:
    async with Harness.running(SITES, cells()) as h:
        api = h.api("par1")
        made = await api.CreateInstance(create_request("web"))
        (address,) = made.addresses
        assert (address.network, address.ipv4) == ("public", "203.0.113.10")  # site_network(0)'s pool start
        assert ipaddress.IPv6Address(address.ipv6) in ipaddress.IPv6Network("2001:db8:1::/64")
        assert address.mac and address.mac == str(address.mac).lower()
        got = await api.GetInstance(compute_pb2.GetInstanceRequest(name=made.name))
        assert list(got.addresses) == list(made.addresses)
        await h.indexed(made.instance_id)

        async def listed() -> bool:
            page = await api.ListInstances(compute_pb2.ListInstancesRequest())
            return [list(i.addresses) for i in page.instances] == [list(made.addresses)]

        await h.until(listed, "the live listing shows the addresses")


@pytest.mark.parametrize(
    ("networks", "field"),
    [
        (["Public!"], "networks[0]"),
        (["public", "public"], "networks[1]"),
        ([f"n{i:02d}" for i in range(17)], "networks"),
        (["x" * 10_000], "networks[0]"),
        (["nowhere"], "networks[0]"),  # a valid name no cell declares: the cell says so
    ],
)
async def test_bad_networks_are_refused_naming_the_field_and_allocate_nothing(
    networks: list[str], field: str
) -> None:
    async with Harness.running(SITES, cells()) as h:
        request = create_request("bad")
        request.networks.extend(networks)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await h.api("par1").CreateInstance(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = err.value.details() or ""
        assert field in details and len(details) < 400, details
        assert [await stored(h, c) for c in h.cells] == [[] for _ in h.cells]


BACKEND = parse_network({
    "name": "backend", "bridge": "br-backend",
    "ipv4": {"cidr": "198.51.100.0/24", "gateway": "198.51.100.1",
             "pool": ["198.51.100.10", "198.51.100.20"]},
})  # fmt: skip


def backend_at_ams1() -> list[CellSpec]:
    """Every site's own public network; ams1 also declares backend."""
    return [
        dataclasses.replace(c, networks=(*c.networks, BACKEND)) if c.site_id == "ams1" else c for c in cells()
    ]


async def test_a_network_only_a_farther_cell_declares_sends_the_create_there() -> None:
    specs = backend_at_ams1()
    async with Harness.running(SITES, specs) as h:
        request = create_request("db")
        request.networks.extend(["public", "backend"])
        made = await h.api("par1").CreateInstance(request)
        assert made.cell == "ams1-c1" and [a.network for a in made.addresses] == ["public", "backend"]
        assert "BuildInstance" not in h.cells["par1-c1"].link.calls  # the router knew: par1 was not asked
        request = create_request("nowhere")
        request.networks.append("storage")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await h.api("par1").CreateInstance(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "networks[0]" in (err.value.details() or "") and "storage" in (err.value.details() or "")
        assert sum(c.link.calls.get("BuildInstance", 0) for c in h.cells.values()) == 1  # only db's


async def test_a_down_cells_instance_still_shows_its_addresses_and_a_list_finds_it_by_address() -> None:
    async with Harness.running(SITES, cells()) as h:
        api = h.api("par1")
        made = await api.CreateInstance(create_request("far", site="ams1"))
        other = await api.CreateInstance(create_request("near"))
        await h.indexed(made.instance_id)
        await h.indexed(other.instance_id)
        (nic,) = made.addresses
        await h.mark_down("ams1-c1")
        got = await api.GetInstance(compute_pb2.GetInstanceRequest(name=made.name))
        assert got.stale and list(got.addresses) == list(made.addresses)  # from the index
        for address in (nic.ipv4, nic.ipv6):

            async def found(address: str = address) -> bool:
                page = await api.ListInstances(compute_pb2.ListInstancesRequest(filter=f"address={address}"))
                return [i.instance_id for i in page.instances] == [made.instance_id]

            await h.until(found, f"the listing finds {address}")


async def test_users_list_the_networks_and_operators_see_each_cells_free_addresses() -> None:
    specs = backend_at_ams1()
    async with Harness.running(SITES, specs) as h:
        found = await h.api("nyc1").ListNetworks(compute_pb2.ListNetworksRequest())
        assert [(n.name, list(n.sites), list(n.default_at)) for n in found.networks] == [
            ("backend", ["ams1"], []),
            ("public", ["ams1", "nyc1", "par1"], ["ams1", "nyc1", "par1"]),
        ]
        await h.api("par1").CreateInstance(create_request("one"))
        await h.sync()
        view = await federation(h).ListSites(federation_pb2.ListSitesRequest())
        nets = {
            c.cell: {n.name: (n.free_addresses, n.default) for n in c.networks}
            for s in view.sites
            for c in s.cells
        }
        assert nets["par1-c1"] == {"public": (52, True)}  # site_network(0)'s pool: 53, one taken
        assert nets["ams1-c1"] == {"public": (53, True), "backend": (11, False)}


async def test_explain_placement_says_which_cells_lack_a_network() -> None:
    async with Harness.running(SITES, backend_at_ams1()) as h:
        request = federation_pb2.ExplainPlacementRequest(flavor="m1.small", networks=["backend"])
        ex = await federation(h).ExplainPlacement(request)
        assert ex.chosen_cell == "ams1-c1"
        reasons = {c.cell: c.reason for c in ex.candidates}
        assert reasons["par1-c1"] == "no network backend" and reasons["nyc1-c1"] == "no network backend"
        request.networks[:] = ["backend", "backend"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await federation(h).ExplainPlacement(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "networks[1]" in (
            err.value.details() or ""
        )


async def test_a_mac_is_never_handed_out_again_even_after_every_row_naming_it_aged_out() -> None:
    async with Harness.running(SITES, cells()) as h:
        api, par1 = h.api("par1"), h.cells["par1-c1"]
        made = await api.CreateInstance(create_request("short-lived"))
        first_mac = made.addresses[0].mac
        assert await par1.records.high_water("mac_sequence") >= 1  # reserved before the row was written
        await api.DeleteInstance(compute_pb2.DeleteInstanceRequest(name=made.name))

        async def deleted() -> bool:
            return any(i.record.state.value == "DELETED" for i in await stored(h, "par1-c1"))

        await h.until(deleted, "the delete finished")
        await h.stop_cell("par1-c1")
        par1.records.expire_deleted(h.clock.now_ms() + 2 * 24 * 3600 * 1000)  # the row's TTL passed
        assert await stored(h, "par1-c1") == []
        await h.start_cell(par1.spec)
        await h.sync()
        again = await api.CreateInstance(create_request("next"))
        assert again.cell == "par1-c1" and again.addresses[0].mac != first_mac
