"""Composition root of the compute agent process: `cellfed agent serve ...`. Parses flags once into a
frozen AgentProcess, opens libvirt, runs the agent, and stops on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cell.compute.agent import AgentSettings, ComputeAgent
from cell.compute.domains import HostLayout
from cell.compute.metrics import AgentMetrics
from fedlib.pki.identity import Role
from fedrpc.metrics_http import serve_metrics
from fedrpc.process import announce_ready, log_to_stderr, until_stopped
from fedrpc.tls import ClientTls
from fedrpc.tls_flags import load_component_tls, tls_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentProcess:
    """Everything `agent serve` was told, checked: the agent's settings and this host's edges."""

    settings: AgentSettings
    state_dir: Path
    metrics_listen: str
    memory_limits: bool  # apply flavors' memory hard limits (decided once, at start)
    tls: ClientTls | None = None  # dial the controller with mTLS, as this agent's certificate says


@click.group("agent")
def agent_cli() -> None:
    """The compute agent (one per host)."""


@agent_cli.command("serve")
@click.option("--host-id", required=True, help="This host's id, unique in its cell.")
@click.option("--cell-id", required=True)
@click.option("--controller", required=True, help="host:port of the cell controller's Agent API.")
@click.option("--site", "site_id", default="", help="The site of the cell (needed with --tls-dir).")
@click.option("--libvirt-uri", default="test:///default", show_default=True)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Per-instance files: config drives, serial logs.")  # fmt: skip
@click.option(
    "--vcpus", default=0, show_default=True, help="Override the vCPUs libvirt reports (0: use libvirt's)."
)
@click.option("--memory-mb", default=0, show_default=True, help="Override the memory libvirt reports.")
@click.option("--disk-gb", default=100, show_default=True)
@click.option("--metrics-listen", default="127.0.0.1:0", show_default=True)
@click.option("--reconcile-s", default=5.0, show_default=True)
@click.option("--orphan-grace-s", default=600.0, show_default=True)
@click.option(
    "--lease-s",
    default=30.0,
    show_default=True,
    help="Lease the agent allows itself before the controller's first grant (which then rules).",
)
@click.option("--fence-s", default=15.0, show_default=True, help="Likewise, the time to power off guests.")
@click.option(
    "--memory-hard-limit",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Apply flavors' memory hard limits; auto: where this process may (CAP_SYS_RESOURCE).",
)
@tls_options
def serve_command(**flags: Any) -> None:
    """Runs one compute agent until SIGTERM."""
    log_to_stderr("agent")  # before the flags are read: deciding on memory limits may warn
    asyncio.run(serve(agent_process(**flags)))


def agent_process(
    *, host_id: str, cell_id: str, controller: str, libvirt_uri: str, state_dir: Path, vcpus: int,
    memory_mb: int, disk_gb: int, metrics_listen: str, reconcile_s: float, orphan_grace_s: float,
    memory_hard_limit: str, lease_s: float = 30.0, fence_s: float = 15.0, site_id: str = "",
    tls_dir: Path | None = None, tls_name: str = "",
) -> AgentProcess:  # fmt: skip
    """The flags of `agent serve` (one keyword each) as one frozen value."""
    settings = AgentSettings(
        host_id=host_id, cell_id=cell_id, controller=controller, libvirt_uri=libvirt_uri, vcpus=vcpus,
        memory_mb=memory_mb, disk_gb=disk_gb, reconcile_s=reconcile_s, orphan_grace_s=orphan_grace_s,
        lease_s=lease_s, fence_s=fence_s,
    )  # fmt: skip
    limits = may_limit_memory() if memory_hard_limit == "auto" else memory_hard_limit == "on"
    if not limits:
        log.warning("memory hard limits off on this host: guests run without one")
    if tls_dir is not None and not site_id:
        raise click.UsageError("--tls-dir needs --site: the agent accepts only its own site's controller")
    tls = load_component_tls(tls_dir, tls_name, site_id, Role.AGENT, host_id)
    return AgentProcess(settings, state_dir, metrics_listen, limits, None if tls is None else ClientTls(tls))


def may_limit_memory(status: Path = Path("/proc/self/status")) -> bool:
    """Whether this process holds CAP_SYS_RESOURCE (bit 24 of CapEff), which libvirt needs to apply a
    memory hard limit (it raises RLIMIT_MEMLOCK for the guest). Unknown means yes: try, and fail loudly."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 24 & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True


async def serve(process: AgentProcess) -> None:
    """Runs one compute agent until SIGTERM or SIGINT; the guests keep running after it stops."""
    from cell.compute.libvirt_host import LibvirtHost

    settings = process.settings
    real = not settings.libvirt_uri.startswith("test://")
    kernel = initrd = None
    if real:
        from cell.compute.guest_image import build_guest_image

        image = await asyncio.to_thread(build_guest_image)
        kernel, initrd = image.kernel, image.initrd
    state_dir = await asyncio.to_thread(process.state_dir.resolve)
    layout = HostLayout(state_dir, "qemu" if real else "test", kernel, initrd, process.memory_limits)
    hv = await asyncio.to_thread(LibvirtHost, settings.libvirt_uri)
    metrics = AgentMetrics(settings.host_id)
    port = serve_metrics(process.metrics_listen, metrics.registry)
    agent = ComputeAgent(settings, hv, layout, metrics, tls=process.tls)
    announce_ready("agent", settings.host_id, metrics=port)
    task = asyncio.create_task(agent.run())
    await until_stopped()
    task.cancel()
    hv.close()
