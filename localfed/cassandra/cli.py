"""`cellfed cassandra ...`: a real local multi-DC Apache Cassandra for development and tests.

Thin: parses options into a ClusterSpec (which validates), calls localfed.cassandra.cluster, renders.
Every failure is a cellfed error turned into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from fedlib.errors import CellfedError
from localfed.cassandra import bundle, cluster
from localfed.cassandra.node_config import ClusterSpec, parse_dcs

F = TypeVar("F", bound=Callable[..., Any])
_err = Console(stderr=True)


def _errors_to_exit(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CellfedError as exc:
            raise click.ClickException(exc.message) from exc

    return wrapper  # type: ignore[return-value]


def _directory(value: Path | None) -> Path:
    # Absolute: the rendered cassandra.yaml and the pid checks use these paths from any working directory.
    return (value or cluster.default_dir()).absolute()


_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cluster directory (default <repo>/.state/cassandra, or $CELLFED_STATE_DIR/cassandra).",
)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress (phases and their timings) to stderr.")
def cassandra(verbose: bool) -> None:
    """A real local multi-DC Apache Cassandra 2.1 (from npm), one loopback address per node."""
    if verbose:
        logging.basicConfig(format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        for name in ("localfed", "replication"):
            logging.getLogger(name).setLevel(logging.INFO)
    else:
        # While a fresh cluster gossips, the driver warns about half-known peers it then finds anyway.
        logging.getLogger("cassandra").setLevel(logging.ERROR)


@cassandra.command()
@_errors_to_exit
def install() -> None:
    """Fetch the Cassandra distribution into the cache (idempotent; $CELLFED_CACHE_DIR overrides)."""
    bundle.find_java()
    installed = bundle.ensure_bundle()
    click.echo(str(installed.home))


@cassandra.command()
@click.option(
    "--dcs", default="eu-west,us-east,ap-south", show_default=True, help="Comma-separated DC names."
)
@click.option("--nodes-per-dc", default=1, show_default=True, type=int)
@click.option(
    "--address-base", default="127.0.0.11", show_default=True, help="First node's address in 127/8."
)
@click.option(
    "--rf", default=1, show_default=True, type=int, help="Replication factor per DC for the schema."
)
@click.option(
    "--timeout", "timeout_s", default=120.0, show_default=True, help="Seconds to wait for readiness."
)
@_dir_option
@_errors_to_exit
def up(
    dcs: str, nodes_per_dc: int, address_base: str, rf: int, timeout_s: float, directory: Path | None
) -> None:
    """Start all nodes together; return once a CL.ALL write across every DC succeeds."""
    spec = ClusterSpec(
        dcs=parse_dcs(dcs),
        nodes_per_dc=nodes_per_dc,
        address_base=address_base,
        directory=_directory(directory),
        rf=rf,
    )
    started = time.monotonic()
    count = len(spec.dcs) * spec.nodes_per_dc
    with _err.status(f"starting {count} Cassandra node(s) in {len(spec.dcs)} DC(s) under {spec.directory}"):
        asyncio.run(cluster.up(spec, deadline_s=timeout_s))
    _print_table(spec.directory)
    _err.print(f"ready in {time.monotonic() - started:.1f}s")


@cassandra.command()
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_dir_option
@_errors_to_exit
def status(output: str, directory: Path | None) -> None:
    """Per node: DC, address, pid and state (up / starting / down)."""
    path = _directory(directory)
    if output == "json":
        rows = [asdict(s) for s in cluster.status(path)]
        click.echo(json.dumps({"dir": str(path), "nodes": rows}, indent=2))
    else:
        _print_table(path)


@cassandra.command()
@click.option("--purge", is_flag=True, help="Also delete the cluster directory (data, logs, config).")
@_dir_option
@_errors_to_exit
def down(purge: bool, directory: Path | None) -> None:
    """Stop every node: SIGTERM, then SIGKILL after a grace period."""
    stopped = cluster.down(_directory(directory), purge=purge)
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@cassandra.command()
@click.option("--node", "selector", required=True, help="Node name, address, or DC (if it has one node).")
@_dir_option
@_errors_to_exit
def kill(selector: str, directory: Path | None) -> None:
    """SIGKILL one node, as a crash would."""
    node = cluster.kill_node(_directory(directory), selector)
    click.echo(f"killed {node.name} ({node.address}, dc {node.dc})")


@cassandra.command("start-node")
@click.option("--node", "selector", required=True, help="Node name, address, or DC (if it has one node).")
@click.option(
    "--timeout", "timeout_s", default=90.0, show_default=True, help="Seconds to wait for readiness."
)
@_dir_option
@_errors_to_exit
def start_node(selector: str, timeout_s: float, directory: Path | None) -> None:
    """Start one stopped node with its data and wait until it serves."""
    node = asyncio.run(cluster.start_node(_directory(directory), selector, deadline_s=timeout_s))
    click.echo(f"started {node.name} ({node.address}, dc {node.dc})")


def _print_table(directory: Path) -> None:
    table = Table(title=f"Cassandra cluster {directory}")
    for column in ("node", "dc", "address", "pid", "state", "log"):
        table.add_column(column)
    colours = {"up": "green", "starting": "yellow", "down": "red"}
    for s in cluster.status(directory):
        state = f"[{colours[s.state]}]{s.state}[/]"
        table.add_row(s.name, s.dc, s.address, str(s.pid or "-"), state, s.log)
    Console(file=sys.stdout).print(table)
