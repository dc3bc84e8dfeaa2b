"""A disk of its own per instance (cell.compute.overlays) with the real qemu-img and qemu-io: two overlays
of one base are two disks (a write into one is not seen by the other nor by the base), each sized to its
flavor's disk; an image larger than the flavor's disk is refused naming both."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from cell.compute.overlays import backing_file, create_overlay, virtual_size
from fedlib.errors import InvalidArgument


def _write(image: Path, pattern: int, offset: int = 0) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} 64k", str(image)],
                   check=True, capture_output=True, timeout=30)  # fmt: skip


def _reads(image: Path, fmt: str, pattern: int, offset: int = 0) -> bool:
    done = subprocess.run(["qemu-io", "-f", fmt, "-c", f"read -P {pattern} {offset} 64k", str(image)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    return done.returncode == 0 and "Pattern verification failed" not in done.stdout


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1G"], check=True, timeout=30)
    _write(path, 0x11)
    path.chmod(0o444)  # shared read-only, as the image store keeps it
    return path


def test_two_overlays_of_one_base_are_two_disks(base: Path, tmp_path: Path) -> None:
    async def make() -> tuple[Path, Path]:
        made = await asyncio.gather(
            create_overlay(base, "qcow2", tmp_path / "a.qcow2", 20),
            create_overlay(base, "qcow2", tmp_path / "b.qcow2", 10),
        )
        return made[0], made[1]

    a, b = asyncio.run(make())
    assert (
        asyncio.run(virtual_size(a, "qcow2")) == 20 * 1024**3
        and asyncio.run(virtual_size(b, "qcow2")) == 10 * 1024**3
    )
    assert asyncio.run(backing_file(a)) == base and asyncio.run(backing_file(b)) == base
    assert _reads(a, "qcow2", 0x11) and _reads(b, "qcow2", 0x11)  # both see the base
    _write(a, 0x22)  # the guest of `a` writes a marker
    assert _reads(a, "qcow2", 0x22)
    assert _reads(b, "qcow2", 0x11) and not _reads(b, "qcow2", 0x22)  # `b` does not see it
    assert _reads(base, "qcow2", 0x11)  # nor does the base
    b.unlink()  # deleting one instance's disk leaves the other's intact
    assert _reads(a, "qcow2", 0x22) and [p.name for p in tmp_path.glob("*.part")] == []


def test_an_image_larger_than_the_flavors_disk_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(big), "3G"], check=True, timeout=30)
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(create_overlay(big, "qcow2", tmp_path / "small.qcow2", 2))
    assert err.value.field == "flavor" and "3.0 GiB, larger than the flavor's 2 GiB" in err.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.qcow2"]
    for fmt, disk, field in (("vmdk", 5, "format"), ("qcow2", 0, "disk_gb")):
        with pytest.raises(InvalidArgument) as err:
            asyncio.run(create_overlay(big, fmt, tmp_path / "x.qcow2", disk))
        assert err.value.field == field
    with pytest.raises(InvalidArgument, match="absolute"):
        asyncio.run(create_overlay(Path("big.qcow2"), "qcow2", tmp_path / "x.qcow2", 5))
