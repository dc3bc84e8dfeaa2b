"""Composition root of the router process: `cellfed router serve ...`. Parses flags once into a frozen
RouterProcess, connects the store, starts the servers, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import click

from cellapi.router.metrics import RouterMetrics
from cellapi.router.settings import RouterSettings
from cellapi.router.status_http import parse_listen
from fedlib.names import check_id
from fedlib.pki.identity import Role
from fedrpc.metrics_http import serve_metrics
from fedrpc.process import announce_ready, log_to_stderr, until_stopped
from fedrpc.tls import ReloadingTls
from fedrpc.tls_flags import load_component_tls, tls_options

if TYPE_CHECKING:
    from replication.cql._base import Levels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterProcess:
    """Everything `router serve` was told, checked: the router's settings and where its edges are."""

    settings: RouterSettings
    contact_points: tuple[str, ...]
    local_dc: str
    global_keyspace: str
    keys_dir: Path
    listen: str
    metrics_listen: str
    status_listen: str  # "": no status page
    tls: ReloadingTls | None = None
    admin_listen: str = ""  # "": the Federation API shares `listen`


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
    "--status-listen",
    default="",
    metavar="HOST:PORT",
    help="Serve the read-only status web page (no auth, no tenant data) here; empty: off.",
)
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
@click.option(
    "--dial",
    multiple=True,
    metavar="ENDPOINT=VIA",
    help="Dial ENDPOINT through VIA (a tunnel, NAT or WAN-emulating proxy); repeatable.",
)
@click.option("--enrich-timeout-s", default=0.5, show_default=True, help="Per-cell deadline when listing.")
@click.option(
    "--admin-listen", default="", metavar="HOST:PORT",
    help="Serve the Federation API here only, to operators' certificates (needs --tls-dir).",
)  # fmt: skip
@tls_options
def serve_command(**flags: Any) -> None:
    """Runs one router until SIGTERM."""
    log_to_stderr("router")
    asyncio.run(serve(router_process(**flags)))


def router_process(
    *, router_id: str, site_id: str, region: str, lat: float, lon: float, listen: str, advertise: str,
    metrics_listen: str, status_listen: str, contact_points: str, local_dc: str, global_keyspace: str,
    keys_dir: Path, dial: tuple[str, ...], enrich_timeout_s: float, tls_dir: Path | None = None,
    tls_name: str = "", admin_listen: str = "",
) -> RouterProcess:  # fmt: skip
    """The flags of `router serve` (one keyword each), validated into one frozen value."""
    try:
        check_id(site_id, "site")
        check_id(router_id, "router-id")
    except Exception as exc:
        raise click.BadParameter(str(exc)) from None
    if status_listen:
        try:
            parse_listen(status_listen)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--status-listen") from None
    settings = RouterSettings(
        router_id=router_id, site_id=site_id, region=region, lat=lat, lon=lon, advertise=advertise,
        enrich_timeout_s=enrich_timeout_s, dial=MappingProxyType(_dial_map(dial)),
    )  # fmt: skip
    points = tuple(p.strip() for p in contact_points.split(",") if p.strip())
    tls = load_component_tls(tls_dir, tls_name, site_id, Role.ROUTER, router_id)
    if admin_listen and tls is None:
        raise click.UsageError(
            "--admin-listen needs --tls-dir: the admin port demands operators' certificates"
        )
    return RouterProcess(
        settings, points, local_dc, global_keyspace, keys_dir, listen, metrics_listen, status_listen, tls,
        admin_listen,
    )  # fmt: skip


def _dial_map(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        endpoint, sep, via = pair.partition("=")
        if not sep or ":" not in endpoint or ":" not in via:
            raise click.BadParameter(f"{pair!r} must look like HOST:PORT=HOST:PORT", param_hint="--dial")
        out[endpoint] = via
    return out


async def serve(process: RouterProcess, levels: Levels | None = None) -> None:
    """Runs one router until SIGTERM or SIGINT, then leaves the directory and closes the store.
    `levels` replaces the global keyspace's LOCAL_* consistency: only the benchmarks' sync baseline
    passes it (localfed.baseline_cli), never a flag of `router serve`."""
    from cellapi.auth import KeyRing
    from cellapi.router.app import start_router
    from replication.cql.federation_rows import CqlSecrets
    from replication.cql.session import connect
    from replication.cql.store import CqlStore
    from replication.paging import LISTING_TOKEN_KEY, new_token_key

    settings = process.settings
    keyring = KeyRing(process.keys_dir)
    session = await asyncio.to_thread(connect, list(process.contact_points), process.local_dc)
    # Every router of the federation signs page tokens with the one key made at schema apply.
    secrets = CqlSecrets(session, process.global_keyspace)
    token_key = await secrets.get_or_create(LISTING_TOKEN_KEY, new_token_key)
    store = CqlStore(session, keyspace=process.global_keyspace, region=settings.region, token_key=token_key)
    if levels is not None:
        store.use_levels(levels)
    metrics = RouterMetrics(settings.site_id)
    metrics_port = serve_metrics(process.metrics_listen, metrics.registry)
    running = await start_router(
        settings, store, keyring, listen=process.listen, metrics=metrics,
        status_listen=process.status_listen or None, tls=process.tls,
        admin_listen=process.admin_listen or None,
    )  # fmt: skip
    log.info("router %s ready on port %d", settings.router_id, running.port)
    status = "off" if running.status_port is None else running.status_port
    admin = "off" if running.admin_port is None else running.admin_port
    announce_ready(
        "router", settings.router_id, port=running.port, metrics=metrics_port, status=status, admin=admin
    )
    await until_stopped()
    await running.stop()
    await session.aclose()
