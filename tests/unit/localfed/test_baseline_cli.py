"""The sync baseline is the production `serve` with one thing changed: same flags, SYNC levels passed in."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cell import main as cell_main
from cellapi.router import main as router_main
from localfed import baseline_cli
from replication.cql._base import SYNC


@pytest.mark.parametrize(
    ("name", "group"), [("router", router_main.router_cli), ("cell", cell_main.cell_cli)]
)
def test_the_baseline_takes_exactly_the_production_flags(name: str, group: click.Group) -> None:
    production = group.commands["serve"]
    baseline = baseline_cli.sync_baseline.commands[name]
    assert [p.name for p in baseline.params] == [p.name for p in production.params]


def test_the_baseline_runs_the_production_root_with_sync_levels() -> None:
    seen: list[tuple[cell_main.CellProcess, object]] = []

    async def serve(process: cell_main.CellProcess, levels: object = None) -> None:
        seen.append((process, levels))

    command = baseline_cli._sync(cell_main.serve_command, cell_main.cell_process, serve, "cell")
    result = CliRunner().invoke(
        command,
        ["--cell-id", "par1-c1", "--site", "par1", "--region", "eu-west", "--cassandra", "127.0.0.1",
         "--local-dc", "eu-west"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((process, levels),) = seen
    assert levels is SYNC
    assert process.settings.cell_id == "par1-c1" and process.contact_points == ("127.0.0.1",)
