"""From the controller's spawn spec (Agent API) to a libvirt DomainSpec and a reconcile DesiredInstance.
Pure except for the config-drive file written by `materialize`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from cellfed.v1 import agent_pb2

from cell.compute.config_drive import ConfigDriveSpec, build_config_drive
from cell.compute.domain_spec import DiskImage, DomainSpec, InstanceMetadata, Isolation, KernelBoot
from cell.compute.network_data import network_data
from cell.compute.nics import attachments, domain_nics
from cell.compute.reconcile import DesiredInstance, DesiredPower
from fedrpc.flavors import flavor_from_proto

# Instance ids are unique federation-wide, so a name-based UUID is stable across agent restarts.
_UUID_NAMESPACE = uuid.UUID("6f1c1c52-8a39-4d7a-9d4e-0c0f0d000000")


@dataclass(frozen=True)
class HostLayout:
    """Where this host keeps per-instance files, and how it boots images."""

    state_dir: Path
    virt_type: str  # "test" for libvirt's test driver, "qemu" for real guests (TCG)
    guest_kernel: Path | None = None  # the project's tiny guest, for image "tiny-guest"
    guest_initrd: Path | None = None
    # False where the hypervisor cannot apply a memory hard limit (libvirt needs CAP_SYS_RESOURCE to
    # raise RLIMIT_MEMLOCK for one, which some containers lack): guests then run without one.
    memory_hard_limits: bool = True


def instance_uuid(instance_id: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, instance_id))


_DESIRED_POWER = {
    agent_pb2.RUNNING: DesiredPower.RUNNING,
    agent_pb2.SHUTOFF: DesiredPower.STOPPED,
    agent_pb2.NO_DOMAIN: DesiredPower.ABSENT,
}


def desired_instance(domain: agent_pb2.DesiredDomain) -> DesiredInstance:
    # Anything else (UNSPECIFIED from an older controller) reads as STOPPED: never start what is unclear.
    power = _DESIRED_POWER.get(domain.power, DesiredPower.STOPPED)
    return DesiredInstance(
        domain.spec.instance_id, power, flavor_from_proto(domain.spec.flavor), domain.spec.spec_version or 1,
        reboot_generation=domain.reboot_generation, generation=domain.spec.generation or 1,
    )  # fmt: skip


def domain_spec(spawn: agent_pb2.SpawnDomain, layout: HostLayout, config_drive: Path | None) -> DomainSpec:
    f = spawn.flavor
    iid = spawn.instance_id
    if spawn.image == "tiny-guest" and layout.guest_kernel and layout.guest_initrd:
        image: KernelBoot | DiskImage = KernelBoot(str(layout.guest_kernel), str(layout.guest_initrd))
    else:
        image = DiskImage(str(layout.state_dir / "images" / f"{spawn.image}.qcow2"))
    return DomainSpec(
        metadata=InstanceMetadata(
            iid, spawn.tenant, f.name, spawn.spec_version or 1, spawn.cell, spawn.generation or 1
        ),
        uuid=instance_uuid(iid),
        vcpus=f.vcpus,
        memory_mib=f.memory_mb,
        image=image,
        isolation=Isolation(
            cpu_shares=f.cpu_shares or None,
            cpu_period_us=f.cpu_period_us or None,
            cpu_quota_us=f.cpu_quota_us or None,
            memory_hard_limit_mib=(f.memory_hard_limit_mb or None) if layout.memory_hard_limits else None,
            total_iops_sec=f.disk_total_iops or None,
            total_bytes_sec=f.disk_total_bytes_per_sec or None,
        ),
        config_drive=str(config_drive) if config_drive else None,
        serial_log=str(layout.state_dir / "console" / f"{iid}.log"),
        virt_type=layout.virt_type,
        nics=domain_nics(attachments(spawn.nics)),
    )


def materialize(spawn: agent_pb2.SpawnDomain, layout: HostLayout) -> DomainSpec:
    """Writes the config drive (user data and, for a guest with NICs, network_data.json reach the guest
    at first boot) and returns the domain spec. The NICs are checked before anything is written."""
    nics = attachments(spawn.nics)
    for sub in ("drives", "console", "images"):
        (layout.state_dir / sub).mkdir(parents=True, exist_ok=True)
    drive = layout.state_dir / "drives" / f"{spawn.instance_id}.iso"
    build_config_drive(
        ConfigDriveSpec(
            spawn.instance_id, instance_uuid(spawn.instance_id), spawn.tenant, spawn.cell, spawn.user_data,
            network_data=network_data(nics) if nics else None,
        ),
        drive,
    )  # fmt: skip
    return domain_spec(spawn, layout, drive)
