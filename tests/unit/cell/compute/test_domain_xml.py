"""Domain XML: the fields libvirt needs, the flavor's isolation, and cellfed metadata that round-trips."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cell.compute.domain_xml import (
    METADATA_NS,
    DiskImage,
    DomainSpec,
    InstanceMetadata,
    Isolation,
    KernelBoot,
    build_domain_xml,
    domain_name,
    parse_metadata,
)
from fedlib.errors import InvalidArgument
from fedlib.ids import new_instance_id

IID = str(new_instance_id("cell-a", 1_700_000_000_000, 42))
UUID = "0F8FAD5B-D9CB-469F-A165-70867728950E"
META = InstanceMetadata(IID, "tenant-1", "m1.small", 3, "cell-a")
KERNEL = KernelBoot("/cache/vmlinuz", "/cache/initrd.img")
FULL_ISOLATION = Isolation(
    cpu_shares=512,
    cpu_period_us=100_000,
    cpu_quota_us=50_000,
    memory_hard_limit_mib=256,
    total_iops_sec=500,
    read_bytes_sec=10_000_000,
    write_bytes_sec=5_000_000,
)


def spec(**overrides: Any) -> DomainSpec:
    base: dict[str, Any] = dict(
        metadata=META,
        uuid=UUID,
        vcpus=2,
        memory_mib=128,
        image=KERNEL,
        config_drive="/run/i/config.iso",
        serial_log="/run/i/serial.log",
    )
    return DomainSpec(**{**base, **overrides})


def tree(s: DomainSpec) -> ET.Element:
    return ET.fromstring(build_domain_xml(s))


def test_identity_size_and_boot_fields() -> None:
    dom = tree(spec())
    assert dom.get("type") == "qemu"
    assert dom.findtext("name") == domain_name(IID) == f"cellfed-{IID}"
    assert dom.findtext("uuid") == UUID.lower()
    assert (dom.findtext("memory"), dom.find("memory").get("unit")) == ("128", "MiB")  # type: ignore[union-attr]
    assert dom.findtext("vcpu") == "2"
    assert dom.find("os/type").get("machine") == "pc"  # type: ignore[union-attr]
    assert dom.findtext("os/kernel") == "/cache/vmlinuz"
    assert dom.findtext("os/initrd") == "/cache/initrd.img"
    assert dom.findtext("os/cmdline") == f"console=ttyS0 cellfed.id={IID}"
    assert dom.find("features/acpi") is not None


def test_config_drive_is_a_readonly_cdrom_and_serial_goes_to_a_file() -> None:
    dom = tree(spec())
    (cdrom,) = dom.findall("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == "/run/i/config.iso"  # type: ignore[union-attr]
    assert cdrom.find("readonly") is not None
    serial = dom.find("devices/serial[@type='file']")
    assert serial is not None and serial.find("source").get("path") == "/run/i/serial.log"  # type: ignore[union-attr]


def test_isolation_elements() -> None:
    dom = tree(spec(image=DiskImage("/var/lib/i/root.qcow2"), isolation=FULL_ISOLATION))
    assert [(e.tag, e.text) for e in dom.find("cputune")] == [  # type: ignore[union-attr]
        ("shares", "512"),
        ("period", "100000"),
        ("quota", "50000"),
    ]
    assert dom.findtext("memtune/hard_limit") == "256"
    root = dom.find("devices/disk[@device='disk']")
    assert root is not None and root.find("source").get("file") == "/var/lib/i/root.qcow2"  # type: ignore[union-attr]
    assert root.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    assert {e.tag: e.text for e in root.find("iotune")} == {  # type: ignore[union-attr]
        "total_iops_sec": "500",
        "read_bytes_sec": "10000000",
        "write_bytes_sec": "5000000",
    }
    assert dom.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]


def test_no_isolation_means_no_tuning_elements_and_test_driver_has_no_machine() -> None:
    dom = tree(spec(virt_type="test", config_drive=None, serial_log=None))
    assert dom.get("type") == "test"
    assert dom.find("cputune") is None and dom.find("memtune") is None
    assert dom.find("os/type").get("machine") is None  # type: ignore[union-attr]
    assert dom.find("devices/disk") is None and dom.find("devices/serial") is None


def test_metadata_round_trips_through_whole_domain_and_bare_element() -> None:
    xml = build_domain_xml(spec())
    assert parse_metadata(xml) == META
    assert ET.fromstring(xml).find(f"metadata/{{{METADATA_NS}}}instance") is not None
    # What virDomainGetMetadata returns: the element without prefix or namespace.
    bare = f"<instance><id>{IID}</id><tenant>tenant-1</tenant><flavor>m1.small</flavor>"
    bare += "<spec-version>3</spec-version><cell>cell-a</cell></instance>"
    assert parse_metadata(bare) == META


tenants = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
flavors = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(tenant=tenants, flavor=flavors, version=st.integers(0, 1 << 40), ms=st.integers(0, (1 << 48) - 1))
def test_metadata_round_trip_property(tenant: str, flavor: str, version: int, ms: int) -> None:
    meta = InstanceMetadata(str(new_instance_id("cell-b", ms, ms * 7)), tenant, flavor, version, "cell-b")
    assert parse_metadata(build_domain_xml(spec(metadata=meta))) == meta


@pytest.mark.parametrize(
    "text",
    ["not xml", "<domain><name>x</name></domain>", "<instance><id>x</id></instance>",
     f"<instance><id>{IID}</id><tenant>t</tenant><flavor>f</flavor><spec-version>v</spec-version>"
     "<cell>cell-a</cell></instance>"],
)  # fmt: skip
def test_parse_metadata_rejects_foreign_or_broken_xml(text: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_metadata(text)
    assert err.value.field == "metadata"


BAD_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("uuid", {"uuid": "nope"}),
    ("vcpus", {"vcpus": 0}),
    ("vcpus", {"vcpus": True}),
    ("memory_mib", {"memory_mib": 64}),  # too small for the real guest's ACPI shutdown
    ("virt_type", {"virt_type": "kvm"}),
    ("config_drive", {"config_drive": "relative.iso"}),
    ("serial_log", {"serial_log": "log\n"}),
    ("image", {"image": "/some/path"}),
    ("memory_hard_limit_mib", {"isolation": Isolation(memory_hard_limit_mib=128)}),
]
BAD_PARTS: list[tuple[str, Any]] = [
    ("instance_id", lambda: dataclasses.replace(META, instance_id="cell-a.short")),
    ("tenant", lambda: dataclasses.replace(META, tenant="Bad Tenant")),
    ("flavor", lambda: dataclasses.replace(META, flavor="")),
    ("cell", lambda: dataclasses.replace(META, cell="A")),
    ("spec_version", lambda: dataclasses.replace(META, spec_version=-1)),
    ("cpu_shares", lambda: Isolation(cpu_shares=1)),
    ("cpu_quota_us", lambda: Isolation(cpu_quota_us=50_000)),
    ("cpu_period_us", lambda: Isolation(cpu_period_us=10, cpu_quota_us=5000)),
    ("total_iops_sec", lambda: Isolation(total_iops_sec=100, read_iops_sec=50)),
    ("total_bytes_sec", lambda: Isolation(total_bytes_sec=100, write_bytes_sec=50)),
    ("read_bytes_sec", lambda: Isolation(read_bytes_sec=0)),
    ("kernel", lambda: KernelBoot("vmlinuz", "/i")),
    ("extra_cmdline", lambda: KernelBoot("/k", "/i", "a\nb")),
    ("image.format", lambda: DiskImage("/d.img", "vmdk")),
]


@pytest.mark.parametrize(("field", "overrides"), BAD_SPECS, ids=[f for f, _ in BAD_SPECS])
def test_bad_spec_names_the_field(field: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument) as err:
        spec(**overrides)
    assert err.value.field == field


@pytest.mark.parametrize(("field", "make"), BAD_PARTS, ids=[f for f, _ in BAD_PARTS])
def test_bad_part_names_the_field(field: str, make: Any) -> None:
    with pytest.raises(InvalidArgument) as err:
        make()
    assert err.value.field == field


def test_test_driver_accepts_small_memory() -> None:
    assert spec(virt_type="test", memory_mib=16).memory_mib == 16


def test_extra_cmdline_is_appended() -> None:
    dom = tree(spec(image=KernelBoot("/k", "/i", "quiet")))
    assert dom.findtext("os/cmdline") == f"console=ttyS0 cellfed.id={IID} quiet"
