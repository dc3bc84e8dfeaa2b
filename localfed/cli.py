"""`cellfed`: runs components and tooling. Each command group lives in its own module; this file only
assembles them, so adding a command never means editing another command's code."""

from __future__ import annotations

import click

from cell.compute.main import agent_cli
from cell.main import cell_cli
from cellapi.auth.cli import keys_group, token_group
from cellapi.router.main import router_cli
from localfed.baseline_cli import sync_baseline
from localfed.bench.cli import bench
from localfed.cassandra.cli import cassandra
from localfed.schema_cli import schema_cli
from localfed.up_cli import down, status, up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cellfed")
def cli() -> None:
    """cellfed: a geo-distributed cells federation (routers, cells, compute agents, tooling)."""


cli.add_command(cassandra)
cli.add_command(cell_cli)
cli.add_command(agent_cli)
cli.add_command(schema_cli)
cli.add_command(up)
cli.add_command(status)
cli.add_command(down)
cli.add_command(bench)
cli.add_command(router_cli)
cli.add_command(token_group)
cli.add_command(keys_group)
cli.add_command(sync_baseline)


def main() -> None:
    cli(prog_name="cellfed")
