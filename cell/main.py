"""Composition root of the cell controller process: `cellfed cell serve ...`. Parses flags once into a
frozen CellProcess, connects the store, starts the servers, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cell.app import start_cell
from cell.controller import ControllerSettings
from cell.leases import LeaseSettings
from cell.metrics import CellMetrics
from cell.placement import Policy
from cell.reassert_pacing import Pacing
from fedlib.errors import CellfedError, InvalidArgument
from fedlib.names import check_id, keyspace_for_cell
from fedlib.networks import ProviderNetwork, parse_networks
from fedlib.pki.identity import Role
from fedrpc.metrics_http import serve_metrics
from fedrpc.process import announce_ready, log_to_stderr, until_stopped
from fedrpc.revocation import RevocationList
from fedrpc.tls import ReloadingTls
from fedrpc.tls_flags import load_component_tls, load_revocations, tls_options

if TYPE_CHECKING:
    from replication.cql._base import Levels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellProcess:
    """Everything `cell serve` was told, checked: the controller's settings and where its edges are."""

    settings: ControllerSettings
    contact_points: tuple[str, ...]
    local_dc: str
    global_keyspace: str
    listen: str
    advertise: str | None  # None: the listen address
    metrics_listen: str
    agent_listen: str | None = None  # None: the Agent API shares `listen`
    tls: ReloadingTls | None = None
    revoked: RevocationList | None = None


@click.group("cell")
def cell_cli() -> None:
    """The cell controller."""


@cell_cli.command("serve")
@click.option("--cell-id", required=True, help="This cell's id, e.g. par1-c1.")
@click.option("--site", "site_id", required=True, help="The site the cell belongs to, e.g. par1.")
@click.option("--region", required=True, help="The region (= its Cassandra DC), e.g. eu-west.")
@click.option(
    "--listen", default="127.0.0.1:7100", show_default=True,
    help="Cell API address (routers dial it); also the Agent API's unless --agent-listen is given.",
)  # fmt: skip
@click.option(
    "--agent-listen", default="", metavar="HOST:PORT",
    help="Serve the Agent API (the cell's compute agents dial it) on a port of its own.",
)  # fmt: skip
@click.option("--advertise", default=None, help="Address routers should dial (default: the listen address).")
@click.option(
    "--metrics-listen", default="127.0.0.1:0", show_default=True, help="Prometheus /metrics address."
)
@click.option(
    "--cassandra", "contact_points", required=True, help="Comma-separated Cassandra contact points."
)
@click.option("--local-dc", required=True, help="The Cassandra DC of this site.")
@click.option("--global-keyspace", default="cellfed_global", show_default=True)
@click.option("--policy", type=click.Choice([p.value for p in Policy]), default="spread", show_default=True)
@click.option(
    "--host-grace-s", default=3.0, show_default=True, help="Silence after which a host leaves placement."
)
@click.option("--build-timeout-s", default=120.0, show_default=True)
@click.option("--lease-s", default=30.0, show_default=True, help="How long a host's lease renewal holds.")
@click.option(
    "--lease-margin-s", default=3.0, show_default=True, help="Clock and delivery slack added to the lease."
)
@click.option(
    "--fence-s", default=15.0, show_default=True, help="Time an agent has to stop its guests after its lease."
)
@click.option(
    "--reassert-period-s", default=300.0, show_default=True,
    help="Every live instance's index and listing rows are written again within this period.",
)  # fmt: skip
@click.option(
    "--reassert-rows-per-s", default=200.0, show_default=True,
    help="Rate limit of the re-assert sweep (rows written per second); it wins over the period.",
)  # fmt: skip
@click.option(
    "--networks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="JSON list of the cell's provider networks (docs/networks.md); without it, guests get no NIC.",
)  # fmt: skip
@tls_options
def serve_command(**flags: Any) -> None:
    """Runs one cell controller until SIGTERM."""
    log_to_stderr("cell")
    try:
        asyncio.run(serve(cell_process(**flags)))
    except CellfedError as exc:  # refused at start (e.g. a declaration that pulls a network from guests)
        raise click.ClickException(exc.message) from None


def cell_process(
    *, cell_id: str, site_id: str, region: str, listen: str, advertise: str | None, metrics_listen: str,
    contact_points: str, local_dc: str, global_keyspace: str, policy: str, host_grace_s: float,
    build_timeout_s: float, lease_s: float = 30.0, lease_margin_s: float = 3.0, fence_s: float = 15.0,
    reassert_period_s: float = 300.0, reassert_rows_per_s: float = 200.0, agent_listen: str = "",
    tls_dir: Path | None = None, tls_name: str = "", networks_file: Path | None = None,
) -> CellProcess:  # fmt: skip
    """The flags of `cell serve` (one keyword each), validated into one frozen value."""
    try:
        check_id(cell_id, "cell-id")
        check_id(site_id, "site")
    except Exception as exc:
        raise click.BadParameter(str(exc)) from None
    settings = ControllerSettings(
        cell_id=cell_id, site_id=site_id, region=region, policy=Policy(policy),
        host_grace_ms=int(host_grace_s * 1000), build_timeout_ms=int(build_timeout_s * 1000),
        leases=LeaseSettings(int(lease_s * 1000), int(lease_margin_s * 1000), int(fence_s * 1000)),
        reassert_period_s=reassert_period_s, reassert_rows_per_s=reassert_rows_per_s,
        networks=read_networks(networks_file) if networks_file is not None else (),
    )  # fmt: skip
    try:
        Pacing(int(reassert_period_s * 1000), reassert_rows_per_s)
    except Exception as exc:
        raise click.BadParameter(str(exc)) from None
    points = tuple(p.strip() for p in contact_points.split(",") if p.strip())
    tls = load_component_tls(tls_dir, tls_name, site_id, Role.CELL, cell_id)
    return CellProcess(
        settings, points, local_dc, global_keyspace, listen, advertise or None, metrics_listen,
        agent_listen or None, tls, load_revocations(tls_dir),
    )  # fmt: skip


_NETWORKS_FILE_MAX = 1 << 20
_FLAG = "--networks-file"


def read_networks(path: Path) -> tuple[ProviderNetwork, ...]:
    """The cell's declared networks, refused at start (naming the field) rather than at a guest's build."""
    try:
        with path.open("rb") as f:
            data = f.read(_NETWORKS_FILE_MAX + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=_FLAG) from None
    if len(data) > _NETWORKS_FILE_MAX:
        raise click.BadParameter(f"{path} is larger than 1 MiB", param_hint=_FLAG)
    try:
        return parse_networks(json.loads(data))
    except (ValueError, RecursionError, InvalidArgument) as exc:
        detail = exc.message if isinstance(exc, InvalidArgument) else f"not JSON: {str(exc)[:120]}"
        raise click.BadParameter(f"{path}: {detail}", param_hint=_FLAG) from None


async def serve(process: CellProcess, levels: Levels | None = None) -> None:
    """Runs one cell controller until SIGTERM or SIGINT; lets queued index writes drain before leaving.
    `levels` replaces the global keyspace's LOCAL_* consistency: only the benchmarks' sync baseline
    passes it (localfed.baseline_cli), never a flag of `cell serve`."""
    from replication.cql.cell_records import CqlCellRecords
    from replication.cql.session import connect
    from replication.cql.store import CqlStore

    settings = process.settings
    session = await asyncio.to_thread(connect, list(process.contact_points), process.local_dc)
    store = CqlStore(session, keyspace=process.global_keyspace, region=settings.region)
    if levels is not None:
        store.use_levels(levels)
    records = CqlCellRecords(session, keyspace_for_cell(settings.cell_id))
    metrics = CellMetrics(settings.cell_id, site=settings.site_id)
    metrics_port = serve_metrics(process.metrics_listen, metrics.registry)
    running = await start_cell(
        settings, records, store, listen=process.listen, advertise=process.advertise, metrics=metrics,
        agent_listen=process.agent_listen, tls=process.tls, revoked=process.revoked,
    )  # fmt: skip
    log.info(
        "cell %s ready: api port %d, agent port %d, metrics port %d%s", settings.cell_id, running.port,
        running.agent_port, metrics_port, " (mTLS)" if process.tls else "",
    )  # fmt: skip
    announce_ready(
        "cell", settings.cell_id, port=running.port, agent=running.agent_port, metrics=metrics_port
    )
    await until_stopped()
    log.info("stopping")
    await running.publisher.drained(2.0)
    await running.stop()
    await session.aclose()
