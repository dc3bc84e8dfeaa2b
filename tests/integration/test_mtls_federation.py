"""mTLS on a real 3-site federation (tests/federation_harness.py with tls=True: separate processes started
by `cellfed up`'s launcher, a PKI from the product's own tooling, WAN proxies between sites): the request
path works; each cell port admits only its roles; a revoked or expired certificate is refused; the whole
PKI (every region CA and every leaf) rotates under a running load with no failed request, and every
server then hands new connections its new certificate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cellfed.v1 import cell_pb2, cell_pb2_grpc, common_pb2
from cryptography import x509

from cellapi.auth import pki_dir
from fedlib.errors import CellfedError
from fedlib.pki.identity import Identity, Role
from fedrpc.channel import open_channel
from fedrpc.tls import ClientTls, ReloadingTls, TlsFiles
from localfed.launcher import LOCAL_FEDERATION
from localfed.pki import leaf_on_disk, served_leaf
from tests.federation_harness import SITES, Federation, running_federation
from tests.integration.test_routers import create_request, wait_status

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(
        tmp_path_factory.mktemp("mtls"), cassandra_cluster.contact_points, tls=True
    ) as f:
        yield f


def _pinned(name: str, site: str) -> Any:
    """An m1.tiny create kept at `site`'s region: this test is about links, not placement."""
    request = create_request(name)
    request.placement.site, request.placement.stay_in_region = site, True
    return request


def _component(fed: Federation, site: str, role: Role, cid: str) -> TlsFiles:
    assert fed.pki is not None
    region = next(s.region for s in SITES if s.site == site)
    return fed.pki.issue(region, Identity(LOCAL_FEDERATION, site, role, cid))


async def _cell_status(port: int, client: TlsFiles | None, site: str = "par1") -> grpc.StatusCode:
    secure = (
        None if client is None else ClientTls(ReloadingTls.start(client, recheck_s=0)).target(site, Role.CELL)
    )
    async with open_channel(f"127.0.0.1:{port}", secure) as channel:
        try:
            await cell_pb2_grpc.CellServiceStub(channel).GetCellStatus(
                cell_pb2.GetCellStatusRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_the_request_path_works_with_every_link_under_mtls(fed: Federation) -> None:
    made = {}
    for s in SITES:
        client = fed.client(s.site)
        try:
            made[s.site] = await client.create(_pinned(f"mtls-{s.site}", s.site))
        finally:
            await client.close()
    reader = fed.client("nyc1")
    try:
        for site, inst in made.items():
            assert inst.cell == f"{site}-c1"
            # ACTIVE: the agent, on its controller's own Agent API port, built it over its mTLS stream.
            assert (await wait_status(reader, inst.instance_id, common_pb2.ACTIVE)).site == site
    finally:
        await reader.close()


async def test_each_cell_port_admits_only_its_roles_and_refuses_revoked_and_expired_certificates(
    fed: Federation, tmp_path: Path
) -> None:
    cell_port, agent_port = fed.cell_ports["par1"], fed.agent_ports["par1"]
    router = _component(fed, "nyc1", Role.ROUTER, "probe-r")
    agent = _component(fed, "par1", Role.AGENT, "probe-a")
    assert await _cell_status(cell_port, router) == grpc.StatusCode.OK
    assert await _cell_status(cell_port, agent) == grpc.StatusCode.PERMISSION_DENIED
    assert await _cell_status(cell_port, None) == grpc.StatusCode.UNAVAILABLE  # plaintext: no session
    assert await _cell_status(agent_port, router) == grpc.StatusCode.UNIMPLEMENTED  # not the Cell API's port
    # Revoked: the cell reads its revoked.txt again on the next call; the router's own calls go on.
    assert fed.pki is not None
    serial = x509.load_pem_x509_certificate(router.cert.read_bytes()).serial_number
    cell_home = fed.pki.home(Identity(LOCAL_FEDERATION, "par1", Role.CELL, "par1-c1"))
    revoked = cell_home / "revoked.txt"
    revoked.write_text(f"{serial:x}\n")
    try:
        assert await _cell_status(cell_port, router) == grpc.StatusCode.UNAUTHENTICATED
        client = fed.client("nyc1")  # the real routers' certificates are not revoked: they go on
        try:
            inst = await client.create(_pinned("after-a-revocation", "par1"))
            assert inst.cell == "par1-c1"
        finally:
            await client.close()
    finally:
        revoked.unlink()
    assert await _cell_status(cell_port, router) == grpc.StatusCode.OK
    # Expired: a router certificate of this federation whose time is up never gets a session.
    ca = fed.pki.ca_dir
    old = pki_dir.issue_leaf(
        ca, "us-east", Identity(LOCAL_FEDERATION, "nyc1", Role.ROUTER, "expired"),
        datetime.now(UTC) - timedelta(hours=3), hours=1, dns=(), ips=(),
    )  # fmt: skip
    expired = TlsFiles(old.chain, old.key, old.ca, LOCAL_FEDERATION, Role.ROUTER)
    credentials = grpc.ssl_channel_credentials(
        old.ca.read_bytes(), expired.key.read_bytes(), expired.cert.read_bytes()
    )
    options = [("grpc.ssl_target_name_override", f"cell.par1.{LOCAL_FEDERATION}")]
    async with grpc.aio.secure_channel(f"127.0.0.1:{cell_port}", credentials, options=options) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await cell_pb2_grpc.CellServiceStub(channel).GetCellStatus(
                cell_pb2.GetCellStatusRequest(), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_whole_pki_rotates_under_load_with_no_failed_request(fed: Federation) -> None:
    assert fed.pki is not None
    probe = _component(fed, "par1", Role.ROUTER, "served-check")
    ports = {f"cell:{s}": p for s, p in fed.cell_ports.items()}
    ports |= {f"agent-api:{s}": p for s, p in fed.agent_ports.items()}
    ports |= {f"router:{s}": p for s, p in fed.router_ports.items()}
    before = {name: await asyncio.to_thread(served_leaf, port, probe) for name, port in ports.items()}
    failures: list[str] = []
    done = {"creates": 0, "gets": 0, "deletes": 0}
    stop = asyncio.Event()

    async def load(site: str) -> None:
        client = fed.client(site)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                try:
                    inst = await client.create(_pinned(f"rot-{site}-{n}", site))
                    done["creates"] += 1
                    await client.get(inst.instance_id)
                    done["gets"] += 1
                    await client.action("Delete", inst.instance_id)  # keeps small Paris from filling up
                    done["deletes"] += 1
                except CellfedError as exc:
                    failures.append(f"{site} #{n}: {exc}")
        finally:
            await client.close()

    workers = [asyncio.create_task(load(s.site)) for s in SITES]
    await asyncio.sleep(3)
    mid = dict(done)
    fed.pki.rotate()  # every region CA, then every component's leaf, renamed over the running files
    await asyncio.sleep(8)  # servers and clients look at their files once a second
    stop.set()
    await asyncio.gather(*workers)
    assert failures == []
    assert done["creates"] > mid["creates"] > 0 and done["deletes"] > mid["deletes"]
    for name, port in ports.items():
        served = await asyncio.to_thread(served_leaf, port, probe)
        kind, site = name.split(":")
        identity = (
            Identity(LOCAL_FEDERATION, site, Role.ROUTER, f"{site}-r1")
            if kind == "router"
            else Identity(LOCAL_FEDERATION, site, Role.CELL, f"{site}-c1")  # both of a cell's ports
        )
        assert served != before[name], f"{name} still serves its old certificate"
        files = TlsFiles.issued(fed.pki.home(identity), identity.file_stem, LOCAL_FEDERATION, identity.role)
        assert served == leaf_on_disk(files), name
