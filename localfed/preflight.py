"""What `cellfed up` checks before it starts anything, so a federation that cannot run fails with one
clear message and leaves nothing half-started: Java for Cassandra, libvirt-python for the agents (and
a working libvirtd for real guests), loopback addresses and ports for every Cassandra node and its WAN
proxy, and memory for the number of sites asked for."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Sequence
from pathlib import Path

from fedlib.errors import ConfigError
from localfed.sites import SiteSpec

# Measured per site on this kind of machine: a Cassandra node ~0.5 GiB under load (ENVIRONMENT.md),
# a router, a controller and two agents ~0.1 GiB each; a real guest adds ~0.2 GiB per 128 MiB guest.
SITE_BUDGET_MB = 1_000
GUEST_BUDGET_MB = 220


def check(root: Path, sites: Sequence[SiteSpec], address_base: str, *, guests_per_site: int = 0) -> None:
    """Raises ConfigError naming the first thing that would stop the federation from starting."""
    from localfed.cassandra import bundle
    from localfed.cassandra.node_config import nodes
    from localfed.cassandra_wan import wan_cluster_spec

    bundle.find_java()
    if importlib.util.find_spec("libvirt") is None:
        raise ConfigError(
            "libvirt-python is not installed here (the compute agents need it): run `bash dev/setup`",
            field="libvirt",
        )
    spec = wan_cluster_spec(root, sites, address_base)  # ConfigError when 127/8 is too small
    port = spec.ports
    for node in nodes(spec):
        for address in (node.address, node.broadcast):
            for p in (port.storage, port.native):
                _check_free(address, p)
    need = len(sites) * (SITE_BUDGET_MB + guests_per_site * GUEST_BUDGET_MB)
    available = available_memory_mb()
    if available is not None and need > available:
        raise ConfigError(
            f"--sites {len(sites)}: needs about {need} MiB of memory, {available} MiB are available",
            field="sites",
        )


def _check_free(address: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise ConfigError(
                f"--cassandra-address-base: {address}:{port} is in use ({exc.strerror}); another federation "
                "or cluster may run there: `cellfed down`, or pick another --cassandra-address-base",
                field="cassandra_address_base",
            ) from None


def available_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in MiB, None where the kernel does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def check_real_guests(root: Path) -> None:
    """Root, libvirt and QEMU installed, a state directory QEMU can reach, libvirtd answering (started
    here if it is not), and the guest image built (cached after the first time)."""
    from cell.compute.guest_image import build_guest_image
    from localfed.real_guests import ensure_libvirtd, host_cannot_run_guests

    reason = host_cannot_run_guests()
    if reason is not None:
        raise ConfigError(f"--real-guests: {reason}", field="real_guests")
    closed = unreachable_by_others(root)
    if closed is not None:
        raise ConfigError(
            f"--real-guests: QEMU runs as its own user and cannot enter {closed} (no o+x): "
            "pick a --dir under directories others may traverse",
            field="dir",
        )
    ensure_libvirtd()
    build_guest_image()


def unreachable_by_others(path: Path) -> Path | None:
    """The first existing directory on the way to `path` that other users cannot traverse, or None."""
    for directory in reversed([path.absolute(), *path.absolute().parents]):
        if directory.exists() and not directory.stat().st_mode & 0o001:
            return directory
    return None
