"""Named flavors and images every site agrees on (data, not code paths). Routers resolve a flavor name
to its full sizes and isolation settings; cells and agents receive the resolved flavor, so every layer
accounts and isolates identically (one type: fedlib.flavor.Flavor). Operators extend the catalog by
configuration in a later release; the names below are the defaults a fresh federation starts with."""

from __future__ import annotations

from fedlib.errors import InvalidArgument
from fedlib.flavor import Flavor


def _flavor(name: str, vcpus: int, memory_mb: int, disk_gb: int) -> Flavor:
    # Shares scale with size; the CPU cap is exactly the vCPUs bought; memory hard limit leaves 64 MiB
    # for QEMU overhead; disk I/O ceilings scale with size so a small guest cannot saturate the host disk.
    return Flavor(
        name=name,
        vcpus=vcpus,
        memory_mb=memory_mb,
        disk_gb=disk_gb,
        cpu_shares=1024 * vcpus,
        cpu_quota_us=100_000 * vcpus,
        cpu_period_us=100_000,
        memory_hard_limit_mb=memory_mb + 64,
        disk_total_iops=500 * vcpus,
        disk_total_bytes_per_sec=50 * 1024 * 1024 * vcpus,
    )


FLAVORS: dict[str, Flavor] = {
    f.name: f
    for f in (
        _flavor("m1.tiny", 1, 128, 1),
        _flavor("m1.small", 1, 2048, 20),
        _flavor("m1.medium", 2, 4096, 40),
        _flavor("m1.large", 4, 8192, 80),
        _flavor("m1.xlarge", 8, 16384, 160),
    )
}

# "tiny-guest" is the project's own kernel + busybox initramfs (real QEMU guests); the others are names
# the libvirt test driver accepts as disks (it boots nothing).
IMAGES: frozenset[str] = frozenset({"tiny-guest", "debian-12", "ubuntu-24.04", "cirros-0.6"})


def resolve_flavor(name: str, field: str = "flavor") -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        known = ", ".join(sorted(FLAVORS))
        raise InvalidArgument(
            f"{field} {name!r} is not a known flavor (known: {known})", field=field
        ) from None


def check_image(name: str, field: str = "image") -> str:
    if name not in IMAGES:
        known = ", ".join(sorted(IMAGES))
        raise InvalidArgument(f"{field} {name!r} is not a known image (known: {known})", field=field)
    return name
