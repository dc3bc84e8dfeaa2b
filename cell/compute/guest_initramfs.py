"""The tiny real guest's initramfs, as bytes (pure): busybox, a few kernel modules, and an /init that
proves the guest ran.

/init writes `CELLFED-GUEST-UP <instance id>` to the serial port, copies the config drive's user data
there line by line as `CELLFED-USERDATA <line>`, then waits for the ACPI power button and powers off,
so libvirt's ACPI shutdown completes in about two seconds instead of timing out into a destroy.
Once the marker is out, the power button is armed.
I/O (downloading packages, reading files) belongs to cell.compute.guest_image.
"""

from __future__ import annotations

import gzip
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Debian's cloud kernel builds these as modules; the closure adds libata, scsi_mod, scsi_common, cdrom.
# button+evdev: the ACPI power button as an input device; ata_piix+sr_mod+isofs: the IDE cdrom
# (/dev/sr0) that carries the config drive.
GUEST_MODULES = ("button", "evdev", "ata_piix", "sr_mod", "isofs")
MARKER_UP = "CELLFED-GUEST-UP"
MARKER_USERDATA = "CELLFED-USERDATA"
MARKER_POWEROFF = "CELLFED-GUEST-POWEROFF"

INIT_SCRIPT = f"""#!/bin/busybox sh
# cellfed tiny guest: prove we ran, show the config drive, power off on the ACPI button.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko; done
# evdev queues events only for open readers: open the power button before announcing the boot, so
# a press that follows the marker is never lost. One read returns on the press; the kernel powers off.
for d in /sys/class/input/event*; do
  if [ "$(cat $d/device/name 2>/dev/null)" = "Power Button" ]; then
    exec 3< /dev/input/${{d##*/}}
    (dd of=/dev/null bs=24 count=1 <&3 2>/dev/null
     echo "{MARKER_POWEROFF}" > /dev/ttyS0; poweroff -f) &
    break
  fi
done
id=$(sed -n 's/.*cellfed\\.id=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
echo "{MARKER_UP} $id" > /dev/ttyS0
# libata probes the IDE bus asynchronously: give /dev/sr0 up to 5 s to appear.
i=0
while [ ! -b /dev/sr0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
if [ -b /dev/sr0 ] && mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then
  if [ -f /mnt/openstack/latest/user_data ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      echo "{MARKER_USERDATA} $line"
    done < /mnt/openstack/latest/user_data > /dev/ttyS0
  fi
  umount /mnt
fi
# PID 1 must never exit (the kernel panics); it idles here until the power-off.
while true; do sleep 3600; done
"""


@dataclass(frozen=True)
class CpioEntry:
    """One initramfs member. `rdev` is (major, minor) for device nodes."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def initramfs(busybox: bytes, modules: Sequence[tuple[str, bytes]]) -> bytes:
    """The gzip'd newc cpio archive; `modules` are (name, .ko bytes) in load order."""
    dirs = ("bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "sys")
    entries = [CpioEntry(d, stat.S_IFDIR | 0o755) for d in dirs]
    # The kernel opens /dev/console for init's stdio before /init can mount devtmpfs.
    entries.append(CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(CpioEntry("bin/busybox", stat.S_IFREG | 0o755, busybox))
    entries.append(CpioEntry("init", stat.S_IFREG | 0o755, INIT_SCRIPT.encode()))
    order = "".join(f"{name}\n" for name, _ in modules).encode()
    entries.append(CpioEntry("etc/modules", stat.S_IFREG | 0o644, order))
    entries += [CpioEntry(f"lib/modules/{name}.ko", stat.S_IFREG | 0o644, ko) for name, ko in modules]
    # mtime 0 in gzip and cpio: the same inputs give the same bytes.
    return gzip.compress(cpio_newc(entries), compresslevel=9, mtime=0)


def cpio_newc(entries: Iterable[CpioEntry]) -> bytes:
    """The SVR4 "newc" cpio format the kernel unpacks: 110-byte ASCII-hex headers, 4-byte alignment."""
    out = bytearray()
    for ino, entry in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (ino, entry.mode, 0, 0, 2 if stat.S_ISDIR(entry.mode) else 1, 0, len(entry.data),
                  0, 0, entry.rdev[0], entry.rdev[1], len(name), 0)  # fmt: skip
        out += b"070701" + b"".join(b"%08x" % f for f in fields) + name
        out += b"\0" * (-len(out) % 4)
        out += entry.data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def module_depends(ko: bytes) -> tuple[str, ...]:
    """The `depends=` list of a kernel module, read from its ELF `.modinfo` section (what modinfo prints),
    so no kmod tools or depmod output are needed."""
    if ko[:5] != b"\x7fELF\x02" or ko[5] != 1:
        raise ValueError("not a little-endian ELF64 kernel module")
    shoff = struct.unpack_from("<Q", ko, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize)
        return name, offset, size

    strtab = section(shstrndx)[1]
    for i in range(shnum):
        name_off, offset, size = section(i)
        name = ko[strtab + name_off : ko.index(b"\0", strtab + name_off)]
        if name == b".modinfo":
            for item in ko[offset : offset + size].split(b"\0"):
                if item.startswith(b"depends="):
                    return tuple(dep for dep in item[8:].decode().split(",") if dep)
            return ()
    raise ValueError("kernel module has no .modinfo section")


def load_order(wanted: Iterable[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """`wanted` and everything they depend on, dependencies first (insmod does not resolve them)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"kernel module dependency cycle through {name}")
        if name not in depends:
            raise ValueError(f"kernel module {name} not found")
        visiting.add(name)
        for dep in depends[name]:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def kernel_package(apt_cache_depends: str, meta: str = "linux-image-cloud-amd64") -> str:
    """The versioned kernel package a kernel metapackage depends on, from `apt-cache depends` output."""
    for line in apt_cache_depends.splitlines():
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "Depends" and value.startswith("linux-image-") and value != meta:
            return value
    raise ValueError(f"{meta} depends on no versioned linux-image package")
