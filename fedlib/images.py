"""The federation image catalog's rows (issue 13): small, global, replicated to every DC; the bytes live
in each site's content-addressed store (cell.compute.image_store), never in the keyspace.

Pure: a row's validation (every refusal naming its field) and the checks a create makes against an
image before anything is built (the flavor's disk and memory, the architecture)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fedlib.errors import InvalidArgument
from fedlib.flavor import Flavor
from fedlib.names import check_display_name, check_id, check_tenant, shown

FORMATS = ("qcow2", "raw")
ARCHITECTURES = ("x86_64", "aarch64")
PUBLIC = ""  # the tenant of an image every tenant may use
MAX_IMAGE_BYTES = 64 * 1024**3  # a PoP's store is small: bigger images are refused at upload
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageRecord:
    name: str
    tenant: str  # PUBLIC ("") for a public image
    format: str
    size_bytes: int
    sha256: str
    min_disk_gb: int
    min_memory_mb: int
    architecture: str
    created_ms: int
    holders: frozenset[str] = field(default_factory=frozenset)  # sites whose store has the bytes

    def __post_init__(self) -> None:
        check_display_name(self.name, "name")
        if self.tenant != PUBLIC:
            check_tenant(self.tenant)
        if self.format not in FORMATS:
            raise InvalidArgument(
                f"format {shown(self.format)} must be one of {', '.join(FORMATS)}", field="format"
            )
        if self.architecture not in ARCHITECTURES:
            raise InvalidArgument(
                f"architecture {shown(self.architecture)} must be one of {', '.join(ARCHITECTURES)}",
                field="architecture",
            )
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise InvalidArgument("sha256 must be 64 lowercase hex characters", field="sha256")
        _whole(self.size_bytes, "size_bytes", 1, MAX_IMAGE_BYTES)
        _whole(self.min_disk_gb, "min_disk_gb", 0, 65_536)
        _whole(self.min_memory_mb, "min_memory_mb", 0, 1 << 24)
        _whole(self.created_ms, "created_ms", 0, 1 << 62)
        object.__setattr__(self, "holders", frozenset(check_id(s, "holders") for s in self.holders))

    @property
    def public(self) -> bool:
        return self.tenant == PUBLIC

    def visible_to(self, tenant: str) -> bool:
        return self.public or self.tenant == tenant

    def check_fits(self, flavor: Flavor) -> None:
        """What a create checks before placing anything: the flavor's disk and memory hold the image."""
        size_gb = -(-self.size_bytes // 1024**3)
        need_disk = max(self.min_disk_gb, size_gb)
        if flavor.disk_gb < need_disk:
            raise InvalidArgument(
                f"image {self.name} needs a {need_disk} GB disk; "
                f"flavor {flavor.name} has {flavor.disk_gb} GB",
                field="flavor",
            )
        if flavor.memory_mb < self.min_memory_mb:
            raise InvalidArgument(
                f"image {self.name} needs {self.min_memory_mb} MB of memory; flavor {flavor.name} has "
                f"{flavor.memory_mb} MB",
                field="flavor",
            )


def _whole(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{name} {shown(value)} must be a whole number in {low}-{high}", field=name)
