"""`cellfed sync-baseline router|cell ...`: the locality benchmark's Galera-style baseline (`cellfed up
--mode sync`), a router or cell controller whose global keyspace reads and writes at QUORUM/EACH_QUORUM.

Dev tooling only, so it lives here and not as a flag of the production `serve` commands: an operator can
never turn the WAN onto the request path by accident (DESIGN principle 3). Each command takes exactly the
flags of the production `serve` it wraps and runs the same composition root, with SYNC levels passed in
as an argument; what the baseline measures is the production process with one thing changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from cell import main as cell_main
from cellapi.router import main as router_main

if TYPE_CHECKING:
    from replication.cql._base import Levels

Run = Callable[[dict[str, Any], "Levels | None"], None]


def _sync(serve: click.Command, run: Run, what: str) -> click.Command:
    def callback(**flags: Any) -> None:
        from replication.cql._base import SYNC

        run(flags, SYNC)

    return click.Command(
        name=what,
        params=list(serve.params),
        callback=callback,
        help=f"`{what} serve` with the global keyspace at QUORUM/EACH_QUORUM (the sync baseline).",
    )


@click.group("sync-baseline", hidden=True)
def sync_baseline() -> None:
    """Dev only: the benchmarks' sync baseline (started by `cellfed up --mode sync`)."""


sync_baseline.add_command(_sync(router_main.serve_command, router_main.run, "router"))
sync_baseline.add_command(_sync(cell_main.serve_command, cell_main.run, "cell"))
