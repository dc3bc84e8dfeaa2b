"""`cellfed`: runs components and tooling. Each command group lives in its own module; this file only
assembles them, so adding a command never means editing another command's code."""

from __future__ import annotations

import click

from localfed.cassandra.cli import cassandra


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cellfed")
def cli() -> None:
    """cellfed: a geo-distributed cells federation (routers, cells, compute agents, tooling)."""


cli.add_command(cassandra)


def main() -> None:
    cli(prog_name="cellfed")
