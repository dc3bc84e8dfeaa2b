"""`cellfed`: the production commands of `cellfed-server` (fedrpc.entry) plus the dev tooling: local
Cassandra, the launcher (`up`, `status`, `down`), benchmarks and the sync baseline they compare against.
Each command group lives in its own module; this file only assembles them, so adding a command never
means editing another command's code."""

from __future__ import annotations

from fedrpc.entry import command_group
from localfed.baseline_cli import sync_baseline
from localfed.bench.cli import bench
from localfed.cassandra.cli import cassandra
from localfed.up_cli import down, status, up

# A group of its own, not the production one with commands added: importing this module (the tests do,
# next to fedrpc.entry) must never change what `cellfed-server` offers.
cli = command_group("cellfed: a geo-distributed cells federation (routers, cells, compute agents, tooling).")
for _command in (cassandra, up, status, down, bench, sync_baseline):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="cellfed")
