"""`cellfed-server`: the production commands only (router, cell and agent `serve`, `schema apply`, `keys`,
`token`), the entry of the image and the k8s manifests. `cellfed` (localfed.cli) is this group plus the
dev tooling (local Cassandra, the launcher, benchmarks), which a server never needs to import.

The group sits here, beside the process plumbing the three composition roots share, because it is the
one module that names every role: cell and cellapi.router never import each other, so neither can hold
it. An import-linter contract keeps this module and the serve modules free of localfed, and the rest of
fedrpc free of the roles."""

from __future__ import annotations

import click

from cell.compute.main import agent_cli
from cell.main import cell_cli
from cellapi.auth.cli import keys_group, token_group
from cellapi.auth.pki_cli import pki_group
from cellapi.router.main import router_cli
from replication.schema_cli import schema_cli

PRODUCTION_COMMANDS: tuple[click.Command, ...] = (
    cell_cli,
    agent_cli,
    schema_cli,
    router_cli,
    token_group,
    keys_group,
    pki_group,
)


def command_group(help_text: str) -> click.Group:
    """A fresh `cellfed` group holding the production commands; each entry adds its own on top."""
    group = click.Group(
        help=help_text,
        commands=list(PRODUCTION_COMMANDS),
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    return click.version_option(package_name="cellfed")(group)


cli = command_group("cellfed-server: the production processes (routers, cells, compute agents) and tools.")


def main() -> None:
    cli(prog_name="cellfed-server")
