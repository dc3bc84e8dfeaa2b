"""Host setup for real QEMU guests on a machine without systemd: virtlogd and libvirtd started by hand,
and /dev/kvm made group-accessible.

Guests run under TCG (`<domain type='qemu'>`): KVM does not work inside these VMs. /dev/kvm still
matters: when it is root-only, libvirt re-probes QEMU on every define (~48 s instead of ~3 ms).
Everything here is idempotent; the daemons are left running for the next test or launcher.
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fedlib.errors import ConfigError, Unavailable

__all__ = [
    "DaemonStatus",
    "ensure_libvirtd",
    "host_cannot_run_guests",
    "real_guests_enabled",
    "real_guests_skip_reason",
    "remove_domains_of",
]

ENABLE_ENV = "CELLFED_REAL_GUESTS"
QEMU_URI = "qemu:///system"
_RUN = Path("/run/libvirt")
# Start order matters: libvirtd hands guest console logs to virtlogd.
_DAEMONS = (("virtlogd", _RUN / "virtlogd-sock"), ("libvirtd", _RUN / "libvirt-sock"))
_SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class DaemonStatus:
    started: tuple[str, ...]  # daemons this call had to start (empty: all were already up)
    kvm_fixed: bool  # whether /dev/kvm's group or mode had to be changed


def real_guests_enabled() -> bool:
    return os.environ.get(ENABLE_ENV) == "1"


def real_guests_skip_reason() -> str | None:
    """Why real guests cannot run here, or None if they can (for pytest.skip and the launcher)."""
    if not real_guests_enabled():
        return f"real QEMU guests are opt-in: set {ENABLE_ENV}=1 (boots TCG guests, ~10 s each)"
    return host_cannot_run_guests()


def host_cannot_run_guests() -> str | None:
    """Why this machine cannot run real guests (root, libvirt and QEMU installed), or None."""
    if os.geteuid() != 0:
        return "real QEMU guests need root (libvirtd, /dev/kvm, tap devices)"
    missing = [d for d, _ in _DAEMONS if shutil.which(d, path=_SBIN_PATH) is None]
    if missing or shutil.which("qemu-system-x86_64") is None:
        return "install the Debian packages libvirt-daemon-system qemu-system-x86 qemu-utils"
    return None


def ensure_libvirtd(timeout_s: float = 30.0) -> DaemonStatus:
    """Fix /dev/kvm, start virtlogd and libvirtd unless their sockets already answer, and wait until
    they do. Raises ConfigError when this machine cannot run them, Unavailable when they do not come up."""
    if os.geteuid() != 0:
        raise ConfigError("starting libvirtd needs root; run as root or start libvirtd yourself")
    kvm_fixed = _fix_dev_kvm(Path("/dev/kvm"))
    started = []
    for daemon, sock in _DAEMONS:
        if _answers(sock):
            continue
        _start(daemon)
        _wait_for(sock, daemon, time.monotonic() + timeout_s)
        started.append(daemon)
    return DaemonStatus(tuple(started), kvm_fixed)


def _fix_dev_kvm(path: Path) -> bool:
    try:
        st = path.stat()
        gid = grp.getgrnam("kvm").gr_gid
    except (FileNotFoundError, KeyError):
        return False  # no KVM device or no kvm group: libvirt probes once and uses TCG
    changed = False
    if st.st_gid != gid:
        os.chown(path, -1, gid)
        changed = True
    if st.st_mode & 0o660 != 0o660:
        os.chmod(path, 0o660)
        changed = True
    return changed


def _answers(sock: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(sock))
        except OSError:
            return False
    return True


def _start(daemon: str) -> None:
    binary = shutil.which(daemon, path=_SBIN_PATH)
    if binary is None:
        raise ConfigError(f"{daemon} not found: install the Debian package libvirt-daemon-system")
    # `-d` daemonizes; a new session keeps it alive when the caller (a test run) is interrupted.
    done = subprocess.run(
        [binary, "-d"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise Unavailable(f"{daemon} -d exited {done.returncode}: {done.stderr.strip()}")


def _wait_for(sock: Path, daemon: str, deadline: float) -> None:
    while not _answers(sock):
        if time.monotonic() > deadline:
            raise Unavailable(f"{daemon} did not open {sock} in time")
        time.sleep(0.1)


def remove_domains_of(cells: set[str], uri: str = QEMU_URI) -> int:
    """Destroys and undefines every domain that cellfed made for one of `cells` (by its metadata), so
    a stopped federation leaves no guest running on the shared libvirtd. Returns how many went."""
    from cell.compute.libvirt_host import LibvirtHost

    removed = 0
    with LibvirtHost(uri) as host:
        for domain in host.list_domains():
            if domain.metadata is not None and domain.metadata.cell in cells:
                removed += host.delete(domain.name)
    return removed
