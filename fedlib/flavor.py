"""The one flavor type, from the router's request to the agent's domain XML, and the resource triple it
is measured in. Pure: fedlib.catalog names the defaults, fedrpc.flavors converts to and from the wire,
cell.placement does the arithmetic of claims."""

from __future__ import annotations

from dataclasses import dataclass

from fedlib.errors import InvalidArgument

RESOURCES = ("vcpus", "memory_mb", "disk_gb")
UNITS = {"vcpus": "vCPUs", "memory_mb": "MB memory", "disk_gb": "GB disk"}


@dataclass(frozen=True, slots=True)
class Resources:
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def __add__(self, o: Resources) -> Resources:
        return Resources(self.vcpus + o.vcpus, self.memory_mb + o.memory_mb, self.disk_gb + o.disk_gb)

    def __sub__(self, o: Resources) -> Resources:
        return Resources(self.vcpus - o.vcpus, self.memory_mb - o.memory_mb, self.disk_gb - o.disk_gb)

    def short_of(self, need: Resources) -> tuple[str, ...]:
        """The resources (by name) of which self, taken as free room, holds less than `need`."""
        return tuple(r for r in RESOURCES if getattr(self, r) < getattr(need, r))


@dataclass(frozen=True)
class Flavor:
    """A resolved flavor: sizes for placement, isolation knobs for the agent's domain XML. Field names
    follow cellfed.v1.Flavor (fedrpc.flavors converts); proto3's 0 ("unset") is None here."""

    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    # Isolation knobs for the agent's domain XML (cputune, memtune, iotune); placement uses only sizes.
    cpu_shares: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    memory_hard_limit_mb: int | None = None
    disk_total_iops: int | None = None
    disk_read_iops: int | None = None
    disk_write_iops: int | None = None
    disk_total_bytes_per_sec: int | None = None
    disk_read_bytes_per_sec: int | None = None
    disk_write_bytes_per_sec: int | None = None

    def __post_init__(self) -> None:
        _check_flavor(self)

    @property
    def resources(self) -> Resources:
        return Resources(self.vcpus, self.memory_mb, self.disk_gb)

    def describe(self) -> str:
        return f"{self.name} ({self.vcpus} vCPUs, {self.memory_mb} MB, {self.disk_gb} GB)"


# The same bounds as cell.compute.domain_spec.Isolation (libvirt's and QEMU's), checked here so a bad
# flavor is refused as a bad request instead of failing a define on some host later.
_RANGES = {
    "cpu_shares": (2, 262_144),
    "cpu_period_us": (1000, 1_000_000),
    "cpu_quota_us": (1000, 1 << 40),
    **dict.fromkeys(("disk_total_iops", "disk_read_iops", "disk_write_iops"), (1, 1 << 40)),
    **dict.fromkeys(
        ("disk_total_bytes_per_sec", "disk_read_bytes_per_sec", "disk_write_bytes_per_sec"), (1, 1 << 50)
    ),
}
# QEMU rejects a total I/O limit combined with a per-direction one of the same unit.
_EXCLUSIVE = (
    ("disk_total_iops", "disk_read_iops", "disk_write_iops"),
    ("disk_total_bytes_per_sec", "disk_read_bytes_per_sec", "disk_write_bytes_per_sec"),
)


def _check_flavor(f: Flavor) -> None:
    def bad(name: str, rule: str) -> InvalidArgument:
        return InvalidArgument(f"flavor {f.name!r}: {name} {rule}", field=f"flavor.{name}")

    if not f.name:
        raise bad("name", "must not be empty")
    for name, low in (("vcpus", 1), ("memory_mb", 1), ("disk_gb", 0)):
        if getattr(f, name) < low:
            raise bad(name, f"must be >= {low}")
    for name, (low, high) in _RANGES.items():
        value = getattr(f, name)
        if value is not None and not low <= value <= high:
            raise bad(name, f"must be {low}..{high} when set")
    if (f.cpu_quota_us is None) != (f.cpu_period_us is None):
        raise bad("cpu_quota_us", "and cpu_period_us go together")
    for total, read, write in _EXCLUSIVE:
        if getattr(f, total) is not None and (getattr(f, read) or getattr(f, write)):
            raise bad(total, f"excludes {read} and {write}")
    # The cgroup limit also covers QEMU's own overhead: at or below the guest's RAM it OOM-kills the VM.
    if f.memory_hard_limit_mb is not None and f.memory_hard_limit_mb <= f.memory_mb:
        raise bad("memory_hard_limit_mb", "must exceed memory_mb")
