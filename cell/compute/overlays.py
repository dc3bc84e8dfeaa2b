"""A disk of its own for every instance (issue 13): a qcow2 overlay whose read-only backing file is the
site's cached base image, sized to the flavor's disk, created and deleted with the instance.

qemu-img does the work (qemu-utils, installed by dev/setup); every call has a deadline. An image whose
virtual size is larger than the flavor's disk is refused before anything is written, naming both."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fedlib.errors import DeadlineExceeded, InvalidArgument, StoreError

QEMU_IMG_TIMEOUT_S = 30.0
FORMATS = ("qcow2", "raw")


async def _qemu_img(*args: str, timeout_s: float = QEMU_IMG_TIMEOUT_S) -> str:
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DeadlineExceeded(f"qemu-img {args[0]} took more than {timeout_s:g}s") from None
    if proc.returncode != 0:
        raise StoreError(f"qemu-img {args[0]} failed: {err.decode(errors='replace').strip()[:300]}")
    return out.decode()


async def virtual_size(image: Path, fmt: str) -> int:
    """The size the guest sees (bytes), from the image's own header."""
    info = json.loads(await _qemu_img("info", "--output=json", "-f", fmt, str(image)))
    return int(info["virtual-size"])


async def create_overlay(base: Path, base_format: str, overlay: Path, disk_gb: int) -> Path:
    """`overlay`, a new qcow2 of `disk_gb` GiB backed by `base` (never written through it)."""
    if base_format not in FORMATS:
        raise InvalidArgument(f"image format {base_format!r} must be one of {FORMATS}", field="format")
    if isinstance(disk_gb, bool) or not isinstance(disk_gb, int) or disk_gb < 1:
        raise InvalidArgument(f"disk_gb {disk_gb!r} must be a positive whole number", field="disk_gb")
    if not base.is_absolute():  # qemu-img would resolve a relative backing file against the overlay's dir
        raise InvalidArgument(f"base {base} must be an absolute path", field="base")
    size = await virtual_size(base, base_format)
    if size > disk_gb * 1024**3:
        raise InvalidArgument(
            f"the image is {size / 1024**3:.1f} GiB, larger than the flavor's {disk_gb} GiB disk",
            field="flavor",
        )
    temporary = overlay.with_name(f".{overlay.name}.part")
    await asyncio.to_thread(temporary.unlink, missing_ok=True)
    create = ("create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base), str(temporary))
    await _qemu_img(*create, f"{disk_gb}G")
    # Whole or absent: reconcile treats a missing overlay like a missing domain.
    await asyncio.to_thread(temporary.replace, overlay)
    return overlay


async def backing_file(overlay: Path) -> Path | None:
    info = json.loads(await _qemu_img("info", "--output=json", str(overlay)))
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    return Path(backing) if backing else None
