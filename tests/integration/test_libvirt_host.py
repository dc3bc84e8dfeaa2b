"""LibvirtHost against libvirt's real API over its test driver (a fake hypervisor, no QEMU).

test:///default keeps its state per process only while some connection to it is open, so the `keeper`
fixture holds one open for the whole module; each test removes what it defines.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from cell.compute.domain_xml import DomainSpec, InstanceMetadata, KernelBoot, build_domain_xml
from cell.compute.hypervisor import DomainState, EventKind, LifecycleEvent
from cell.compute.libvirt_host import LibvirtCallError, LibvirtHost
from fedlib.ids import new_instance_id

pytestmark = pytest.mark.libvirt
URI = "test:///default"
_seq = itertools.count(1)


def make_spec(tenant: str = "tenant-1") -> DomainSpec:
    n = next(_seq)
    meta = InstanceMetadata(
        str(new_instance_id("cell-a", 1_700_000_000_000 + n, n)), tenant, "m1.tiny", 1, "cell-a"
    )
    image = KernelBoot("/nonexistent/vmlinuz", "/nonexistent/initrd")  # the test driver never reads them
    return DomainSpec(meta, str(uuid.uuid4()), 1, 64, image, virt_type="test")


@pytest.fixture(scope="module")
def keeper() -> Iterator[LibvirtHost]:
    with LibvirtHost(URI) as host:
        yield host


@pytest.fixture
def host(keeper: LibvirtHost) -> Iterator[LibvirtHost]:
    with LibvirtHost(URI) as h:
        before = {d.name for d in h.list_domains()}
        yield h
        for d in h.list_domains():
            if d.name not in before:
                h.delete(d.name)


def test_lifecycle_define_start_stop_reboot_destroy_undefine(host: LibvirtHost) -> None:
    spec = make_spec()
    info = host.define_and_start(build_domain_xml(spec))
    assert (info.uuid, info.state, info.metadata) == (spec.uuid, DomainState.RUNNING, spec.metadata)
    assert host.shutdown(info.name, timeout_s=5) is True
    assert host.domain(info.name).state is DomainState.SHUTOFF
    assert host.shutdown(info.name) is True  # already off: nothing to do
    host.start(info.name)
    host.reboot(info.name)
    assert host.domain(info.name).state is DomainState.RUNNING
    host.destroy(info.name)
    assert host.domain(info.name).state is DomainState.SHUTOFF
    host.undefine(info.name)
    assert info.name not in {d.name for d in host.list_domains()}


def test_define_without_start_and_idempotent_delete(host: LibvirtHost) -> None:
    info = host.define(build_domain_xml(make_spec()))
    assert info.state is DomainState.SHUTOFF
    host.start(info.name)
    assert host.delete(info.name) is True  # destroys the running domain, then undefines
    assert host.delete(info.name) is False


def test_metadata_is_recovered_from_a_new_connection(host: LibvirtHost) -> None:
    specs = [make_spec("tenant-a"), make_spec("tenant-b")]
    for s in specs:
        host.define_and_start(build_domain_xml(s))
    with LibvirtHost(URI) as fresh:  # as a restarted agent would
        found = {d.uuid: d for d in fresh.list_domains()}
    for s in specs:
        assert found[s.uuid].metadata == s.metadata
        assert found[s.uuid].state is DomainState.RUNNING
    assert found  # the driver's own "test" domain is listed too, as foreign
    assert any(d.metadata is None for d in found.values())


async def test_lifecycle_events_reach_an_asyncio_queue(host: LibvirtHost) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[LifecycleEvent] = asyncio.Queue()
    handle = host.subscribe(lambda ev: loop.call_soon_threadsafe(queue.put_nowait, ev))
    spec = make_spec()
    name = (await asyncio.to_thread(host.define_and_start, build_domain_xml(spec))).name
    await asyncio.to_thread(host.shutdown, name, 5.0)
    await asyncio.to_thread(host.start, name)
    await asyncio.to_thread(host.destroy, name)
    want = [
        (EventKind.DEFINED, ""),
        (EventKind.STARTED, "booted"),
        (EventKind.STOPPED, "shutdown"),
        (EventKind.STARTED, "booted"),
        (EventKind.STOPPED, "destroyed"),
    ]
    got: list[tuple[EventKind, str]] = []
    while len(got) < len(want):
        ev = await asyncio.wait_for(queue.get(), timeout=5)
        if ev.domain_name == name:
            assert ev.uuid == spec.uuid
            got.append((ev.kind, ev.detail_name))
    assert got == want
    host.unsubscribe(handle)
    await asyncio.to_thread(host.undefine, name)
    await asyncio.sleep(0.2)
    assert queue.empty()  # nothing delivered after unsubscribe


def test_a_failing_subscriber_does_not_stop_the_others(host: LibvirtHost) -> None:
    seen: list[LifecycleEvent] = []

    def broken(_ev: LifecycleEvent) -> None:
        raise RuntimeError("subscriber bug")

    host.subscribe(broken)
    host.subscribe(seen.append)
    host.define(build_domain_xml(make_spec()))
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen and seen[0].kind is EventKind.DEFINED


def test_errors_carry_the_call_name_and_libvirt_message(host: LibvirtHost) -> None:
    info = host.define_and_start(build_domain_xml(make_spec()))
    with pytest.raises(LibvirtCallError) as err:
        host.start(info.name)
    assert err.value.call == "virDomainCreate"
    assert "already running" in err.value.message
    with pytest.raises(LibvirtCallError) as err:
        host.domain("cellfed-missing")
    assert (err.value.call, err.value.no_domain) == ("virDomainLookupByName", True)
    with pytest.raises(LibvirtCallError) as err:
        host.define("<domain type='test'><name>x</name>")
    assert err.value.call == "virDomainDefineXML"
    with pytest.raises(LibvirtCallError) as err:
        LibvirtHost("test:///nonexistent/host.xml")
    assert err.value.call == "virConnectOpen"


def test_capacity_of_default_and_custom_hosts(tmp_path: Path, keeper: LibvirtHost) -> None:
    cap = keeper.capacity()
    assert cap.cpus == 16 and cap.memory_mib > 0
    node = tmp_path / "host.xml"
    node.write_text(
        "<node><cpu><mhz>2400</mhz><model>cellfed-test</model><active>6</active><nodes>1</nodes>"
        "<sockets>1</sockets><cores>6</cores><threads>1</threads></cpu>"
        "<memory>8388608</memory></node>"  # KiB
    )
    with LibvirtHost(f"test://{node}") as custom:
        cap = custom.capacity()
    assert (cap.cpus, cap.memory_mib, cap.cpu_model, cap.cpu_mhz) == (6, 8192, "cellfed-test", 2400)


def test_a_domain_with_nics_defines_and_starts_and_keeps_its_macs(host: LibvirtHost) -> None:
    import dataclasses
    import xml.etree.ElementTree as ET

    from cell.compute.domain_spec import Nic
    from fedlib.macs import mac_for

    nics = (Nic(mac_for("cell-a", 7), "br-public"), Nic(mac_for("cell-a", 8), "br-backend"))
    spec = dataclasses.replace(make_spec(), nics=nics)
    info = host.define_and_start(build_domain_xml(spec))
    assert info.state is DomainState.RUNNING
    live = ET.fromstring(host._conn.lookupByName(info.name).XMLDesc())  # type: ignore[attr-defined]
    found = [(i.find("mac").get("address"), i.find("source").get("bridge"))  # type: ignore[union-attr]
             for i in live.findall("./devices/interface")]  # fmt: skip
    assert found == [(nic.mac, nic.bridge) for nic in nics]
