"""`cellctl`: the user and operator CLI. Commands arrive with the router (issue 4); today it prints help."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cellfed")
def cli() -> None:
    """cellctl: create, inspect and manage instances across the federation (routers arrive next)."""


def main() -> None:
    cli(prog_name="cellctl")
