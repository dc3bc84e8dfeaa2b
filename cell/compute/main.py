"""Composition root of the compute agent process: `cellfed agent serve ...`."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from cell.compute.agent import AgentSettings, ComputeAgent
from cell.compute.domains import HostLayout
from cell.compute.metrics import AgentMetrics
from fedrpc.metrics_http import serve_metrics

log = logging.getLogger(__name__)


@click.group("agent")
def agent_cli() -> None:
    """The compute agent (one per host)."""


@agent_cli.command("serve")
@click.option("--host-id", required=True, help="This host's id, unique in its cell.")
@click.option("--cell-id", required=True)
@click.option("--controller", required=True, help="host:port of the cell controller.")
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
    "--memory-hard-limit",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Apply flavors' memory hard limits; auto: where this process may (CAP_SYS_RESOURCE).",
)
def serve(**opts: object) -> None:
    """Runs one compute agent until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s agent: %(message)s")
    settings = AgentSettings(
        host_id=str(opts["host_id"]), cell_id=str(opts["cell_id"]), controller=str(opts["controller"]),
        libvirt_uri=str(opts["libvirt_uri"]), vcpus=int(opts["vcpus"]),  # type: ignore[call-overload]
        memory_mb=int(opts["memory_mb"]), disk_gb=int(opts["disk_gb"]),  # type: ignore[call-overload]
        reconcile_s=float(opts["reconcile_s"]), orphan_grace_s=float(opts["orphan_grace_s"]),  # type: ignore[arg-type]
    )  # fmt: skip
    choice = str(opts["memory_hard_limit"])
    limits = may_limit_memory() if choice == "auto" else choice == "on"
    if not limits:
        log.warning("memory hard limits off on this host: guests run without one")
    asyncio.run(_serve(settings, Path(str(opts["state_dir"])), str(opts["metrics_listen"]), limits))


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


async def _serve(settings: AgentSettings, state_dir: Path, metrics_listen: str, memory_limits: bool) -> None:
    from cell.compute.libvirt_host import LibvirtHost

    real = not settings.libvirt_uri.startswith("test://")
    kernel = initrd = None
    if real:
        from cell.compute.guest_image import build_guest_image

        image = await asyncio.to_thread(build_guest_image)
        kernel, initrd = image.kernel, image.initrd
    layout = HostLayout(
        await asyncio.to_thread(state_dir.resolve), "qemu" if real else "test", kernel, initrd, memory_limits
    )
    hv = await asyncio.to_thread(LibvirtHost, settings.libvirt_uri)
    metrics = AgentMetrics(settings.host_id)
    port = serve_metrics(metrics_listen, metrics.registry)
    agent = ComputeAgent(settings, hv, layout, metrics)
    print(f"READY agent={settings.host_id} metrics={port}", flush=True)
    task = asyncio.create_task(agent.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    task.cancel()
    hv.close()
