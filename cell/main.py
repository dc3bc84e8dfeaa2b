"""Composition root of the cell controller process: `cellfed cell serve ...`. Parses flags once into
frozen settings, connects the store, starts the servers, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from cell.app import start_cell
from cell.controller import ControllerSettings
from cell.metrics import CellMetrics
from cell.placement import Policy
from fedlib.names import check_id, keyspace_for_cell
from fedrpc.metrics_http import serve_metrics

log = logging.getLogger(__name__)


@click.group("cell")
def cell_cli() -> None:
    """The cell controller."""


@cell_cli.command("serve")
@click.option("--cell-id", required=True, help="This cell's id, e.g. par1-c1.")
@click.option("--site", "site_id", required=True, help="The site the cell belongs to, e.g. par1.")
@click.option("--region", required=True, help="The region (= its Cassandra DC), e.g. eu-west.")
@click.option("--listen", default="127.0.0.1:7100", show_default=True, help="Cell and Agent API address.")
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
@click.option(
    "--consistency",
    type=click.Choice(["local", "sync"]),
    default="local",
    show_default=True,
    help="Global keyspace levels: local (LOCAL_*, the design) or sync (EACH_QUORUM/QUORUM baseline).",
)
def serve(**opts: object) -> None:
    """Runs one cell controller until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s cell: %(message)s")
    try:
        check_id(str(opts["cell_id"]), "cell-id")
        check_id(str(opts["site_id"]), "site")
    except Exception as exc:
        raise click.BadParameter(str(exc)) from None
    settings = ControllerSettings(
        cell_id=str(opts["cell_id"]),
        site_id=str(opts["site_id"]),
        region=str(opts["region"]),
        policy=Policy(opts["policy"]),
        host_grace_ms=int(float(opts["host_grace_s"]) * 1000),  # type: ignore[arg-type]
        build_timeout_ms=int(float(opts["build_timeout_s"]) * 1000),  # type: ignore[arg-type]
    )
    asyncio.run(_serve(settings, opts))


async def _serve(settings: ControllerSettings, opts: dict[str, object]) -> None:
    from replication.cql._base import SYNC
    from replication.cql.cell_records import CqlCellRecords
    from replication.cql.session import connect
    from replication.cql.store import CqlStore

    points = [p.strip() for p in str(opts["contact_points"]).split(",") if p.strip()]
    session = await asyncio.to_thread(connect, points, str(opts["local_dc"]))
    store = CqlStore(session, keyspace=str(opts["global_keyspace"]), region=settings.region)
    if opts["consistency"] == "sync":
        store.use_levels(SYNC)
    records = CqlCellRecords(session, keyspace_for_cell(settings.cell_id))
    metrics = CellMetrics(settings.cell_id, site=settings.site_id)
    metrics_port = serve_metrics(str(opts["metrics_listen"]), metrics.registry)
    running = await start_cell(
        settings, records, store, listen=str(opts["listen"]), advertise=opts["advertise"] or None,  # type: ignore[arg-type]
        metrics=metrics,
    )  # fmt: skip
    log.info("cell %s ready: api port %d, metrics port %d", settings.cell_id, running.port, metrics_port)
    print(f"READY cell={settings.cell_id} port={running.port} metrics={metrics_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await running.publisher.drained(2.0)
    await running.stop()
    await session.aclose()
