"""Builds the tiny real guest (a Debian cloud kernel and a ~2 MB busybox initramfs) into a project-local
cache, idempotently: a second call returns the cached files without touching apt or the network.

Only Debian's ordinary clients are used (`apt-get download`, `dpkg -x`): nothing is installed on the
host. Cache: `$CELLFED_CACHE_DIR/guest/`, else `<repo>/.cache/guest/`. Run `python -m
cell.compute.guest_image` to build it ahead of a test run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cell.compute.guest_initramfs import (
    GUEST_MODULES,
    INIT_SCRIPT,
    initramfs,
    kernel_package,
    load_order,
    module_depends,
)
from fedlib.errors import CellfedError

__all__ = ["GuestImage", "GuestImageError", "build_guest_image", "default_cache_dir"]

KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# Part of the cache key: a change to /init or the module list rebuilds the initramfs, nothing else.
_RECIPE = hashlib.sha256(f"{INIT_SCRIPT}\0{GUEST_MODULES}\0v1".encode()).hexdigest()[:16]


class GuestImageError(CellfedError):
    """The guest image could not be built (apt, dpkg or package contents); the message says which step."""


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    kernel_package: str


def default_cache_dir() -> Path:
    env = os.environ.get("CELLFED_CACHE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".cache"


def build_guest_image(cache_dir: Path | None = None) -> GuestImage:
    """The guest's kernel and initramfs under `<cache_dir>/guest/`, built on first use. Process-safe:
    concurrent callers wait on a file lock and then find the finished image."""
    guest = (cache_dir or default_cache_dir()) / "guest"
    guest.mkdir(parents=True, exist_ok=True)
    with open(guest / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _cached(guest)
        if cached is not None:
            return cached
        try:
            return _build(guest)
        except ValueError as exc:  # the pure parsers' complaints about package contents
            raise GuestImageError(f"could not build the guest image: {exc}") from None


def _cached(guest: Path) -> GuestImage | None:
    try:
        manifest = json.loads((guest / "image.json").read_text())
    except (OSError, ValueError):
        return None
    image = GuestImage(Path(manifest["kernel"]), Path(manifest["initrd"]), manifest["kernel_package"])
    if manifest.get("recipe") != _RECIPE or not (image.kernel.is_file() and image.initrd.is_file()):
        return None
    return image


def _build(guest: Path) -> GuestImage:
    pkg = kernel_package(
        _run(["apt-cache", "depends", KERNEL_META], "resolve the kernel package"), KERNEL_META
    )
    kernel_root = _extract(guest, pkg)
    busybox_root = _extract(guest, BUSYBOX_PACKAGE)
    version = pkg.removeprefix("linux-image-")
    modules = _modules(kernel_root / "lib" / "modules" / version / "kernel")
    initrd = guest / f"initramfs-{version}-{_RECIPE}.img"
    _write_atomic(initrd, initramfs((busybox_root / "bin" / "busybox").read_bytes(), modules))
    kernel = guest / f"vmlinuz-{version}"
    _write_atomic(kernel, (kernel_root / "boot" / f"vmlinuz-{version}").read_bytes())
    image = GuestImage(kernel, initrd, pkg)
    manifest = {"kernel": str(kernel), "initrd": str(initrd), "kernel_package": pkg, "recipe": _RECIPE}
    _write_atomic(guest / "image.json", json.dumps(manifest, indent=2).encode())
    # The unpacked trees (~150 MB) are only inputs; the .debs stay so a rebuild needs no network.
    shutil.rmtree(guest / "pkgs", ignore_errors=True)
    for stale in guest.glob("initramfs-*.img"):
        if stale != initrd:
            stale.unlink()
    return image


def _extract(guest: Path, package: str) -> Path:
    """`apt-get download` + `dpkg -x` into `<guest>/pkgs/<package>`, skipped when already there."""
    root = guest / "pkgs" / package
    if root.is_dir():
        return root
    deb = _download(guest / "debs", package)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{package}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["dpkg", "-x", str(deb), str(tmp)], f"unpack {deb.name}")
    tmp.rename(root)  # only complete extractions ever appear under their final name
    return root


def _download(debs: Path, package: str) -> Path:
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    # apt-get writes into its working directory: a private one, so an interrupted download never
    # leaves a truncated .deb under a final name.
    tmp = debs / f".{package}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run(["apt-get", "download", package], f"download {package} (has `apt-get update` run?)", cwd=tmp)
    (deb,) = tmp.glob(f"{package}_*.deb")
    final = debs / deb.name
    deb.rename(final)
    tmp.rmdir()
    return final


def _modules(kernel_tree: Path) -> list[tuple[str, bytes]]:
    # Module names use '_' where file names may use '-' (modinfo's depends= lists the '_' form).
    files = {p.name.removesuffix(".ko").replace("-", "_"): p for p in kernel_tree.rglob("*.ko")}
    blobs: dict[str, bytes] = {}
    depends: dict[str, tuple[str, ...]] = {}
    pending = list(GUEST_MODULES)
    while pending:  # read only the closure, not all ~1,100 modules
        name = pending.pop()
        if name in blobs:
            continue
        if name not in files:
            raise GuestImageError(f"kernel module {name} is not in {kernel_tree}")
        blobs[name] = files[name].read_bytes()
        depends[name] = module_depends(blobs[name])
        pending.extend(depends[name])
    return [(name, blobs[name]) for name in load_order(GUEST_MODULES, depends)]


def _run(argv: list[str], step: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GuestImageError(f"could not {step}: {exc}") from None
    if done.returncode != 0:
        raise GuestImageError(
            f"could not {step}: {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
        )
    return done.stdout


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main() -> None:
    """CLI hook: build (or find) the guest image and print where it is."""
    image = build_guest_image(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"kernel {image.kernel}\ninitrd {image.initrd} ({image.initrd.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
