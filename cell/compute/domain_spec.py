"""What a compute host must run for one instance: frozen dataclasses validated on construction (pure).

A spec that exists is a spec libvirt will accept: every check names the field at fault
(fedlib.errors.InvalidArgument), so a bad flavor fails at the cell, not as a libvirt message at boot.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from fedlib.errors import InvalidArgument
from fedlib.ids import parse_instance_id
from fedlib.macs import parse_mac
from fedlib.names import check_display_name, check_id, check_tenant
from fedlib.networks import check_bridge

VIRT_TYPES = ("qemu", "test")
# The tiny real guest ignores the ACPI power button below this (measured on the CI machines).
MIN_QEMU_MEMORY_MIB = 96
_MAX_VCPUS = 64
_MAX_MEMORY_MIB = 1 << 20
# libvirt's own ranges for <cputune>: period 1 ms..1 s, shares 2..262144 (cgroup v1 cpu.shares).
_PERIOD_US = (1000, 1_000_000)
_SHARES = (2, 262_144)


@dataclass(frozen=True)
class InstanceMetadata:
    """What cellfed writes into the domain so a restarted agent knows what it runs."""

    instance_id: str
    tenant: str
    flavor: str
    spec_version: int
    cell: str
    generation: int = 1  # which copy of the instance this is (bumped by evacuation); older = stale

    def __post_init__(self) -> None:
        parse_instance_id(self.instance_id, "instance_id")
        check_tenant(self.tenant, "tenant")
        check_display_name(self.flavor, "flavor")
        check_id(self.cell, "cell")
        _int_in(self.spec_version, "spec_version", 0, 1 << 62)
        _int_in(self.generation, "generation", 1, 1 << 62)


@dataclass(frozen=True)
class Isolation:
    """A flavor's share of the host. None leaves the hypervisor default (no limit)."""

    cpu_shares: int | None = None
    cpu_period_us: int | None = None
    cpu_quota_us: int | None = None
    memory_hard_limit_mib: int | None = None
    total_iops_sec: int | None = None
    read_iops_sec: int | None = None
    write_iops_sec: int | None = None
    total_bytes_sec: int | None = None
    read_bytes_sec: int | None = None
    write_bytes_sec: int | None = None

    def __post_init__(self) -> None:
        _opt_int_in(self.cpu_shares, "cpu_shares", *_SHARES)
        _opt_int_in(self.cpu_period_us, "cpu_period_us", *_PERIOD_US)
        _opt_int_in(self.cpu_quota_us, "cpu_quota_us", 1000, 1 << 40)
        if (self.cpu_quota_us is None) != (self.cpu_period_us is None):
            raise InvalidArgument("cpu_quota_us and cpu_period_us go together", field="cpu_quota_us")
        _opt_int_in(self.memory_hard_limit_mib, "memory_hard_limit_mib", 1, _MAX_MEMORY_MIB)
        for name in ("total_iops_sec", "read_iops_sec", "write_iops_sec"):
            _opt_int_in(getattr(self, name), name, 1, 1 << 40)
        for name in ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec"):
            _opt_int_in(getattr(self, name), name, 1, 1 << 50)
        # QEMU rejects a total limit combined with a per-direction one of the same unit.
        for total, read, write in (
            ("total_iops_sec", "read_iops_sec", "write_iops_sec"),
            ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec"),
        ):
            if getattr(self, total) is not None and (getattr(self, read) or getattr(self, write)):
                raise InvalidArgument(f"{total} excludes {read} and {write}", field=total)


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (the tiny real guest, or any kernel+initrd pair)."""

    kernel: str
    initrd: str
    extra_cmdline: str = ""

    def __post_init__(self) -> None:
        _abs_path(self.kernel, "kernel")
        _abs_path(self.initrd, "initrd")
        if any(c in self.extra_cmdline for c in "\n\r\0"):
            raise InvalidArgument("extra_cmdline must be one line", field="extra_cmdline")


@dataclass(frozen=True)
class DiskImage:
    """Boot from a disk image file (the instance's own root disk)."""

    path: str
    format: str = "qcow2"

    def __post_init__(self) -> None:
        _abs_path(self.path, "image.path")
        if self.format not in ("qcow2", "raw"):
            raise InvalidArgument(f"image.format {self.format!r} must be qcow2 or raw", field="image.format")


@dataclass(frozen=True)
class Nic:
    """A virtio NIC on a host bridge (the provider network's), with the MAC the cell generated."""

    mac: str
    bridge: str

    def __post_init__(self) -> None:
        parse_mac(self.mac)
        check_bridge(self.bridge)


@dataclass(frozen=True)
class DomainSpec:
    """Everything build_domain_xml needs; `uuid` is canonicalised to lowercase 8-4-4-4-12."""

    metadata: InstanceMetadata
    uuid: str
    vcpus: int
    memory_mib: int
    image: KernelBoot | DiskImage
    isolation: Isolation = field(default_factory=Isolation)
    config_drive: str | None = None
    serial_log: str | None = None
    virt_type: str = "qemu"
    nics: tuple[Nic, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", canonical_uuid(self.uuid))
        _int_in(self.vcpus, "vcpus", 1, _MAX_VCPUS)
        if self.virt_type not in VIRT_TYPES:
            raise InvalidArgument(
                f"virt_type {self.virt_type!r} must be one of {VIRT_TYPES}", field="virt_type"
            )
        low = MIN_QEMU_MEMORY_MIB if self.virt_type == "qemu" else 1
        _int_in(self.memory_mib, "memory_mib", low, _MAX_MEMORY_MIB)
        limit = self.isolation.memory_hard_limit_mib
        if limit is not None and limit <= self.memory_mib:
            # The cgroup limit covers QEMU's own overhead too; at or below guest RAM it OOM-kills the VM.
            raise InvalidArgument(
                "memory_hard_limit_mib must exceed memory_mib", field="memory_hard_limit_mib"
            )
        if not isinstance(self.image, KernelBoot | DiskImage):
            raise InvalidArgument("image must be a KernelBoot or a DiskImage", field="image")
        if self.config_drive is not None:
            _abs_path(self.config_drive, "config_drive")
        if self.serial_log is not None:
            _abs_path(self.serial_log, "serial_log")


def canonical_uuid(value: str) -> str:
    try:
        return str(uuidlib.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"uuid {value!r} is not a UUID", field="uuid") from None


def _int_in(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{name} {value!r} must be an integer in [{low}, {high}]", field=name)


def _opt_int_in(value: object, name: str, low: int, high: int) -> None:
    if value is not None:
        _int_in(value, name, low, high)


def _abs_path(value: object, name: str) -> None:
    if (
        not isinstance(value, str)
        or not PurePosixPath(value).is_absolute()
        or any(c in value for c in "\n\0")
    ):
        raise InvalidArgument(f"{name} {value!r} must be an absolute path", field=name)
