"""Composition root of the router process: `cellfed router serve ...`."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from cellapi.router.metrics import RouterMetrics
from cellapi.router.settings import RouterSettings
from fedlib.names import check_id
from fedrpc.metrics_http import serve_metrics

log = logging.getLogger(__name__)


@click.group("router")
def router_cli() -> None:
    """The router (one or more per site): the public Compute API and the operator Federation API."""


@router_cli.command("serve")
@click.option("--router-id", required=True, help="Unique id of this router process.")
@click.option("--site", "site_id", required=True, help="The site this router serves, e.g. par1.")
@click.option("--region", required=True, help="The region (= its Cassandra DC), e.g. eu-west.")
@click.option("--lat", type=click.FloatRange(-90, 90), required=True, help="Site latitude.")
@click.option("--lon", type=click.FloatRange(-180, 180), required=True, help="Site longitude.")
@click.option("--listen", default="127.0.0.1:7000", show_default=True)
@click.option(
    "--advertise", default="", help="host:port peers and clients dial (default: the listen address)."
)
@click.option("--metrics-listen", default="127.0.0.1:0", show_default=True)
@click.option(
    "--cassandra", "contact_points", required=True, help="Comma-separated Cassandra contact points."
)
@click.option("--local-dc", required=True, help="The Cassandra DC of this site.")
@click.option("--global-keyspace", default="cellfed_global", show_default=True)
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory of token-signing PUBLIC keys (<kid>.pub), reloaded when it changes.",
)
@click.option("--enrich-timeout-s", default=0.5, show_default=True, help="Per-cell deadline when listing.")
def serve(**opts: object) -> None:
    """Runs one router until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s router: %(message)s")
    try:
        check_id(str(opts["site_id"]), "site")
        check_id(str(opts["router_id"]), "router-id")
    except Exception as exc:
        raise click.BadParameter(str(exc)) from None
    settings = RouterSettings(
        router_id=str(opts["router_id"]),
        site_id=str(opts["site_id"]),
        region=str(opts["region"]),
        lat=float(opts["lat"]),
        lon=float(opts["lon"]),
        advertise=str(opts["advertise"]),  # type: ignore[arg-type]
        enrich_timeout_s=float(opts["enrich_timeout_s"]),  # type: ignore[arg-type]
    )
    asyncio.run(_serve(settings, opts))


async def _serve(settings: RouterSettings, opts: dict[str, object]) -> None:
    from cellapi.auth import KeyRing
    from cellapi.router.app import start_router
    from replication.cql.session import connect
    from replication.cql.store import CqlStore

    keyring = KeyRing(Path(str(opts["keys_dir"])))
    points = [p.strip() for p in str(opts["contact_points"]).split(",") if p.strip()]
    session = await asyncio.to_thread(connect, points, str(opts["local_dc"]))
    store = CqlStore(session, keyspace=str(opts["global_keyspace"]), region=settings.region)
    metrics = RouterMetrics(settings.site_id)
    metrics_port = serve_metrics(str(opts["metrics_listen"]), metrics.registry)
    running = await start_router(settings, store, keyring, listen=str(opts["listen"]), metrics=metrics)
    log.info("router %s ready on port %d", settings.router_id, running.port)
    print(f"READY router={settings.router_id} port={running.port} metrics={metrics_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
    await session.aclose()
