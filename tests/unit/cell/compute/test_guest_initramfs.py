"""The guest initramfs builder's pure parts: newc cpio layout, module dependency order, package names."""

from __future__ import annotations

import gzip
import stat
import struct

import pytest

from cell.compute.guest_initramfs import (
    INIT_SCRIPT,
    MARKER_UP,
    MARKER_USERDATA,
    CpioEntry,
    cpio_newc,
    initramfs,
    kernel_package,
    load_order,
    module_depends,
)


def parse_newc(blob: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """An independent reader: what the kernel's unpacker does."""
    out: list[tuple[str, int, bytes, tuple[int, int]]] = []
    pos = 0
    while True:
        assert blob[pos : pos + 6] == b"070701"
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name = blob[pos + 110 : pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        data = blob[pos : pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            assert pos == len(blob)
            return out
        out.append((name, mode, data, (rmaj, rmin)))


def test_cpio_round_trips_names_modes_data_and_device_numbers() -> None:
    entries = [
        CpioEntry("dev", stat.S_IFDIR | 0o755),
        CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        CpioEntry("a", stat.S_IFREG | 0o644, b"x"),
        CpioEntry("odd-length-name", stat.S_IFREG | 0o755, b"12345"),
    ]
    got = parse_newc(cpio_newc(entries))
    assert got == [(e.name, e.mode, e.data, e.rdev) for e in entries]


def test_initramfs_holds_init_busybox_and_modules_in_order() -> None:
    blob = initramfs(b"BUSYBOX", [("scsi_mod", b"S"), ("sr_mod", b"R")])
    assert initramfs(b"BUSYBOX", [("scsi_mod", b"S"), ("sr_mod", b"R")]) == blob  # reproducible
    files = {name: (mode, data) for name, mode, data, _ in parse_newc(gzip.decompress(blob))}
    assert files["init"] == (stat.S_IFREG | 0o755, INIT_SCRIPT.encode())
    assert files["bin/busybox"][1] == b"BUSYBOX"
    assert files["etc/modules"][1] == b"scsi_mod\nsr_mod\n"
    assert files["lib/modules/sr_mod.ko"][1] == b"R"
    assert stat.S_ISCHR(files["dev/console"][0])
    assert MARKER_UP in INIT_SCRIPT and MARKER_USERDATA in INIT_SCRIPT and "poweroff -f" in INIT_SCRIPT


def fake_module(modinfo: bytes) -> bytes:
    """A minimal ELF64 with a section-name table and a .modinfo section."""
    shstr = b"\0.shstrtab\0.modinfo\0"
    body_off = 64
    shstr_off, modinfo_off = body_off, body_off + len(shstr)
    shoff = modinfo_off + len(modinfo)
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 1)
    sections = bytes(64)  # the null section
    sections += struct.pack("<IIQQQQ", 1, 3, 0, 0, shstr_off, len(shstr)) + bytes(24)
    sections += struct.pack("<IIQQQQ", 11, 1, 0, 0, modinfo_off, len(modinfo)) + bytes(24)
    return bytes(header) + shstr + modinfo + sections


def test_module_depends_reads_modinfo() -> None:
    ko = fake_module(b"license=GPL\0depends=scsi_mod,cdrom\0name=sr_mod\0")
    assert module_depends(ko) == ("scsi_mod", "cdrom")
    assert module_depends(fake_module(b"depends=\0name=cdrom\0")) == ()
    with pytest.raises(ValueError):
        module_depends(b"not an elf at all")


def test_load_order_puts_dependencies_first() -> None:
    deps = {"sr_mod": ("scsi_mod", "cdrom"), "scsi_mod": ("scsi_common",), "scsi_common": (), "cdrom": ()}
    assert load_order(["sr_mod"], deps) == ["scsi_common", "scsi_mod", "cdrom", "sr_mod"]
    with pytest.raises(ValueError, match="not found"):
        load_order(["nope"], deps)
    with pytest.raises(ValueError, match="cycle"):
        load_order(["a"], {"a": ("b",), "b": ("a",)})


def test_kernel_package_resolves_the_metapackage() -> None:
    text = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n"
    assert kernel_package(text) == "linux-image-6.1.0-56-cloud-amd64"
    with pytest.raises(ValueError):
        kernel_package("linux-image-cloud-amd64\n")
