"""`cellfed up | status | down`: the local multi-site federation, the README's main job.

`up` runs in the foreground as the supervisor: it starts one Cassandra DC per region, then per site a cell
(controller + compute agents) and a router, with WAN-emulating proxies between sites; it prints the
endpoints, runs a sample workload from a client at each site and shows the federation view. With
`--keep` it stays up for exploration with cellctl until Ctrl-C or `cellfed down`. Re-running `up` after a
crash cleans up what the dead supervisor left."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import click
from cellfed.v1 import common_pb2
from rich.console import Console
from rich.table import Table

from fedlib.errors import CellfedError, ConfigError, NotFound
from localfed import preflight
from localfed.cassandra_wan import start_wan_cluster, wait_links
from localfed.launcher import STATE_FILE, TEST_URI, LocalFederation
from localfed.paths import state_dir
from localfed.process_state import component_row, process_state
from localfed.real_guests import QEMU_URI
from localfed.sites import default_sites, for_real_guests, matrix_from_json, rtt_matrix
from localfed.workload import run_workload, summarize

DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State directory (default <repo>/.state/federation).",
)


def _root(directory: Path | None) -> Path:
    return (directory or state_dir() / "federation").absolute()


def _console() -> Console:
    """Rich assumes 80 columns when output is not a terminal (CI logs, pipes): too narrow for these tables."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=150)


def _alive(pid: int) -> bool:
    return process_state(pid) not in ("gone", "zombie")


@click.command("up")
@click.option("--sites", "count", default=3, show_default=True, help="Sites, each in its own region.")
@click.option("--rtt-scale", default=1.0, show_default=True, help="Scale the great-circle RTT matrix.")
@click.option(
    "--rtt-matrix",
    "rtt_matrix_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='RTTs in ms instead of great-circle ones, JSON: {"par1": {"nyc1": 80, "sin1": 160}, ...}.',
)
@click.option(
    "--per-site", default=5, show_default=True, help="Instances the sample workload creates per site."
)
@click.option("--workload/--no-workload", default=True, show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["p2p", "central", "sync"]),
    default="p2p",
    show_default=True,
    help="p2p: a router per site (the design); central: one top router; sync: EACH_QUORUM/QUORUM.",
)
@click.option(
    "--cassandra-address-base",
    default="127.0.0.11",
    show_default=True,
    help="First Cassandra node's loopback address (one per region follows).",
)
@click.option("--prometheus", is_flag=True, help="Also run a Prometheus that scrapes every component.")
@click.option(
    "--tls",
    is_flag=True,
    help="mTLS on every gRPC link, from a federation PKI made in DIR/pki (cellctl: --ca DIR/pki/ca.crt).",
)
@click.option(
    "--real-guests",
    is_flag=True,
    help="Real QEMU guests (the project's tiny kernel, TCG) on one compute host per site.",
)
@click.option(
    "--keep", is_flag=True, help="Stay up (foreground) for exploration until Ctrl-C or `cellfed down`."
)
@DIR_OPTION
def up(
    count: int,
    rtt_scale: float,
    rtt_matrix_file: Path | None,
    per_site: int,
    workload: bool,
    mode: str,
    cassandra_address_base: str,
    prometheus: bool,
    tls: bool,
    real_guests: bool,
    keep: bool,
    directory: Path | None,
) -> None:
    """Starts a local federation of N sites and shows it doing real work."""
    console, root = _console(), _root(directory)
    try:
        sites = default_sites(count)
        rtt = rtt_matrix(sites, rtt_scale)
        if rtt_matrix_file is not None:
            rtt = matrix_from_json(_read_json(rtt_matrix_file), sites, rtt_scale)
        if real_guests:
            sites = for_real_guests(sites)
        _clean_leftovers(root)
        preflight.check(root, sites, cassandra_address_base, guests_per_site=per_site if real_guests else 0)
        if real_guests:
            preflight.check_real_guests(root)
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None
    if tls and mode == "sync":
        raise click.UsageError("--tls runs with --mode p2p or central (the sync baseline is plaintext)")
    libvirt_uri = QEMU_URI if real_guests else TEST_URI
    # Each site's guests get a NIC on its own network; not yet with real guests, whose bridge would have to
    # exist on this host (issue 12: inside a network namespace the federation makes).
    fed = LocalFederation(
        root, sites, [], rtt, mode=mode, libvirt_uri=libvirt_uri, tls=tls, networks=not real_guests
    )
    # `cellfed down` must find a federation that is still starting, and its SIGTERM must clean up as
    # Ctrl-C does (the default handler would kill this process and orphan every child).
    root.mkdir(parents=True, exist_ok=True)
    fed.write_state()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        image = "tiny-guest" if real_guests else "debian-12"
        asyncio.run(_up(console, fed, workload, per_site, keep, cassandra_address_base, prometheus, image))
    except CellfedError as exc:
        raise click.ClickException(exc.message) from None
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping the federation ...")
        fed.stop()
        _remove_guests(fed.libvirt_uri, {s.cell for s in sites})
        _cassandra_down(root)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--rtt-matrix {path}: not readable JSON ({exc})", field="rtt_matrix") from None


def _clean_leftovers(root: Path) -> None:
    """One federation per directory; what a crashed run left there is stopped before anything starts."""
    state = root / STATE_FILE
    if state.exists():
        data = json.loads(state.read_text())
        if _alive(data.get("supervisor", 0)):
            raise click.ClickException(
                f"a federation already runs from {root} (pid {data['supervisor']}): `cellfed down` first"
            )
        _kill_leftovers(data)
        state.unlink()
    _cassandra_down(root)  # whatever a crashed run left


def _kill_leftovers(data: dict[str, object]) -> None:
    """What a supervisor that died left: its process groups, and its guests on the machine's libvirtd."""
    for pid in dict(data.get("pids", {})).values():  # type: ignore[call-overload]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)
    _remove_guests(str(data.get("libvirt_uri", TEST_URI)), set(data.get("cell_ids", [])))  # type: ignore[call-overload]


def _remove_guests(libvirt_uri: str, cells: set[str]) -> None:
    """Guests live in the machine's libvirtd, not in our processes: stopping the agents leaves them."""
    if libvirt_uri != TEST_URI and cells:
        from localfed.real_guests import remove_domains_of

        remove_domains_of(cells, libvirt_uri)


def _cassandra_down(root: Path) -> None:
    """The local federation's data is throwaway: nodes stop and their directory goes with them."""
    from localfed.cassandra import cluster

    with contextlib.suppress(NotFound):
        cluster.down(root / "cassandra", purge=True)


async def _up(
    console: Console,
    fed: LocalFederation,
    workload: bool,
    per_site: int,
    keep: bool,
    address_base: str,
    prometheus: bool,
    image: str,
) -> None:
    started = time.monotonic()
    with console.status("starting Cassandra: one DC per region ...") as status:
        wan, fed.contact_points = await start_wan_cluster(
            fed.root, fed.sites, fed.rtt, fed.proxy_host, address_base
        )
        fed.supervise_cassandra(fed.root / "cassandra")
        await fed.start(lambda text: status.update(text + " ..."))
        status.update("turning on the emulated WAN between Cassandra DCs ...")
        wan.enable()
        await wait_links(fed.contact_points, [s.region for s in fed.sites])
        status.update("waiting until every router sees every cell ...")
        from localfed.view import print_sites, wait_ready

        await wait_ready(fed)
    console.print(f"[bold]federation ready in {time.monotonic() - started:.1f}s[/bold]")
    _print_endpoints(console, fed)
    scraper = None
    if prometheus:
        from localfed.prometheus import start_prometheus, targets_of

        scraper = await asyncio.to_thread(start_prometheus, fed.root / "prometheus", targets_of(fed))
        console.print(f"Prometheus scraping every component: {scraper.url}")
    try:
        if workload:
            with console.status("running the sample workload from a client at each site ..."):
                created: list[common_pb2.Instance] = []
                samples = await run_workload(fed, per_site, image, created)
            _print_workload(console, summarize(samples))
            _print_addresses(console, created)
        await print_sites(console, fed)
        if keep:
            console.print("up: explore with cellctl (see the lines above); Ctrl-C or `cellfed down` stops it")
            await _wait_for_signal()
    finally:
        if scraper is not None:
            scraper.stop()


def _print_addresses(console: Console, created: list[common_pb2.Instance]) -> None:
    with_nics = [i for i in created if i.addresses]
    if not with_nics:
        return
    # Four columns: it fits the 80 columns of a pipe (MACs and networks: `cellctl get`).
    table = Table(title="Addresses of the workload's instances (each site's own network)")
    for column in ("instance", "site", "IPv4", "IPv6"):
        table.add_column(column, no_wrap=True)
    for inst in with_nics:
        for a in inst.addresses:
            table.add_row(inst.display_name, inst.site, a.ipv4, a.ipv6)
    console.print(table)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _print_endpoints(console: Console, fed: LocalFederation) -> None:
    table = Table(title="Sites")
    for column in ("site", "city", "region (Cassandra DC)", "router", "cell"):
        table.add_column(column)
    for s in fed.sites:
        table.add_row(s.site, s.city, s.region, fed.router(s.site), f"127.0.0.1:{fed.cell_ports[s.site]}")
    console.print(table)
    routers = ",".join(fed.router(s.site) for s in fed.sites)
    console.print(f"export CELLFED_ROUTERS={routers}")
    console.print(
        f"export CELLFED_TOKEN=$(jq -r .tokens.acme {fed.root / STATE_FILE})   # admin: .tokens.admin"
    )
    if fed.pki is not None:
        console.print(f"export CELLFED_CA={fed.pki.ca_file}   # every link is mTLS; users trust this root")


def _print_workload(console: Console, summary: dict[tuple[str, str], dict[str, object]]) -> None:
    table = Table(title="Sample workload: a client at each site, talking to its own site's router")
    for column in ("client at", "operation", "n", "p50 ms", "max ms", "served by"):
        table.add_column(column)
    for (site, op), row in sorted(summary.items()):
        served = ", ".join(str(cell) for cell in row["served_by"])  # type: ignore[attr-defined]
        table.add_row(site, op, str(row["n"]), str(row["p50_ms"]), str(row["max_ms"]), served)
    console.print(table)


@click.command("status")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@DIR_OPTION
def status(output: str, directory: Path | None) -> None:
    """Every component of the running local federation: its state (running, restarting, dead, stopped
    by SIGSTOP), restarts, endpoint, metrics URL."""
    path = _root(directory) / STATE_FILE
    if not path.exists():
        raise click.ClickException(
            f"no federation runs from {path.parent} (start one with `cellfed up --keep`)"
        )
    data = json.loads(path.read_text())
    supervisor_alive = _alive(data["supervisor"])
    supervision = data.get("supervision", {})
    rows = [
        component_row(name, pid, supervision.get(name, {}), data["metrics"].get(name, ""), supervisor_alive)
        for name, pid in sorted(data["pids"].items())
    ]
    rows.insert(0, component_row("supervisor", data["supervisor"], {}, "", supervisor_alive))
    if output == "json":
        click.echo(
            json.dumps({"components": rows, "routers": data["routers"], "cells": data["cells"]}, indent=2)
        )
        return
    table = Table(title=f"Local federation in {path.parent}")
    for column in ("component", "pid", "state", "restarts", "last exit", "metrics"):
        table.add_column(column)
    for r in rows:
        state = r["state"] if r["alive"] else f"[red]{r['state']}[/red]"
        table.add_row(r["component"], str(r["pid"]), state, str(r["restarts"]), r["last_exit"], r["metrics"])
    _console().print(table)


@click.command("down")
@DIR_OPTION
def down(directory: Path | None) -> None:
    """Stops the local federation cleanly (its supervisor, or what a crashed one left behind)."""
    root = _root(directory)
    path = root / STATE_FILE
    if path.exists():
        data = json.loads(path.read_text())
        supervisor = int(data.get("supervisor", 0))
        if _alive(supervisor):
            os.kill(supervisor, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while _alive(supervisor) and time.monotonic() < deadline:
                time.sleep(0.2)
        _kill_leftovers(data)
        path.unlink(missing_ok=True)
    _cassandra_down(root)
    click.echo("stopped")
