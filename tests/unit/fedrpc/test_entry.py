"""`cellfed-server` offers the production commands and nothing of the dev tooling; `cellfed` offers the
same commands plus the tooling; neither `serve` offers the benchmark-only consistency switch."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import click
import pytest

from cell import main as cell_main
from cell.compute import main as agent_main
from cellapi.router import main as router_main
from fedrpc.entry import cli as server_cli
from localfed.cli import cli as dev_cli

PRODUCTION = {"agent", "cell", "keys", "pki", "router", "schema", "token"}
DEV = {"bench", "cassandra", "down", "status", "up", "sync-baseline"}


def test_the_server_entry_has_the_production_commands_only() -> None:
    assert set(server_cli.commands) == PRODUCTION


def test_cellfed_is_the_server_entry_plus_the_dev_tooling() -> None:
    assert set(dev_cli.commands) == PRODUCTION | DEV
    for name in PRODUCTION:
        assert dev_cli.commands[name] is server_cli.commands[name]


def test_the_server_entry_loads_no_dev_tooling() -> None:
    code = "import sys, fedrpc.entry; print(sorted(m for m in sys.modules if m.split('.')[0] == 'localfed'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _serve(group: click.Command) -> click.Command:
    assert isinstance(group, click.Group)
    return group.commands["serve"]


@pytest.mark.parametrize("name", ["router", "cell", "agent"])
def test_no_serve_offers_a_consistency_choice(name: str) -> None:
    assert "--consistency" not in {o for p in _serve(server_cli.commands[name]).params for o in p.opts}


@pytest.mark.parametrize(
    ("command", "build"),
    [
        (router_main.router_cli, router_main.router_process),
        (cell_main.cell_cli, cell_main.cell_process),
        (agent_main.agent_cli, agent_main.agent_process),
    ],
)
def test_each_flag_is_one_typed_keyword_of_the_process_builder(
    command: click.Command, build: Callable[..., Any]
) -> None:
    """The click callback hands its flags on as **kwargs; this keeps the typed builder in step."""
    flags = {p.name for p in _serve(command).params if p.name != "help"}
    params = inspect.signature(build).parameters
    assert flags == set(params)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.annotation != "Any" for p in params.values())
