"""Image catalog rows (fedlib.images): every field checked with its name, visibility by tenant, and the
create-time check that a flavor holds the image (disk and memory), naming both."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fedlib.catalog import FLAVORS
from fedlib.errors import InvalidArgument
from fedlib.images import MAX_IMAGE_BYTES, PUBLIC, ImageRecord

GOOD = ImageRecord(
    "debian-12", PUBLIC, "qcow2", 2 * 1024**3 + 1, "ab" * 32, 10, 512, "x86_64", 1, frozenset({"par1"})
)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "web\n"}, "name"),
        ({"tenant": "Not A Tenant"}, "tenant"),
        ({"format": "vmdk"}, "format"),
        ({"architecture": "sparc"}, "architecture"),
        ({"sha256": "AB" * 32}, "sha256"),
        ({"sha256": "ab" * 31}, "sha256"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"size_bytes": MAX_IMAGE_BYTES + 1}, "size_bytes"),
        ({"min_disk_gb": -1}, "min_disk_gb"),
        ({"min_memory_mb": True}, "min_memory_mb"),
        ({"holders": frozenset({"Par 1"})}, "holders"),
    ],
)
def test_a_bad_field_is_refused_naming_it(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        dataclasses.replace(GOOD, **change)
    assert err.value.field == field and len(err.value.message) < 300


def test_visibility_public_or_the_owner_only() -> None:
    private = dataclasses.replace(GOOD, tenant="acme")
    assert GOOD.public and GOOD.visible_to("anyone")
    assert private.visible_to("acme") and not private.visible_to("other")


def test_a_flavor_must_hold_the_image_on_disk_and_in_memory() -> None:
    GOOD.check_fits(FLAVORS["m1.small"])  # 20 GB, 2048 MB
    with pytest.raises(InvalidArgument, match=r"needs a 10 GB disk; flavor m1\.tiny has 1 GB") as err:
        GOOD.check_fits(FLAVORS["m1.tiny"])
    assert err.value.field == "flavor"
    big = dataclasses.replace(GOOD, min_disk_gb=0, size_bytes=25 * 1024**3)
    with pytest.raises(InvalidArgument, match="needs a 25 GB disk"):
        big.check_fits(FLAVORS["m1.small"])
    hungry = dataclasses.replace(GOOD, min_memory_mb=4096)
    with pytest.raises(InvalidArgument, match=r"needs 4096 MB of memory; flavor m1\.small has 2048 MB"):
        hungry.check_fits(FLAVORS["m1.small"])
