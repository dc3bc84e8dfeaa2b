"""`cellfed sync-baseline router|cell ...`: the locality benchmark's Galera-style baseline (`cellfed up
--mode sync`), a router or cell controller whose global keyspace reads and writes at QUORUM/EACH_QUORUM.

Dev tooling only, so it lives here and not as a flag of the production `serve` commands: an operator can
never turn the WAN onto the request path by accident (DESIGN principle 3). Each command takes exactly the
flags of the production `serve` it wraps and runs the same composition root, with SYNC levels passed in
as an argument; what the baseline measures is the production process with one thing changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cell import main as cell_main
from cellapi.router import main as router_main
from fedrpc.process import log_to_stderr

if TYPE_CHECKING:
    from replication.cql._base import Levels

P = TypeVar("P")


def _sync(
    serve_command: click.Command,
    build: Callable[..., P],
    serve: Callable[[P, Levels], Coroutine[Any, Any, None]],
    role: str,
) -> click.Command:
    """`<role> serve` again, same flags and same process, with SYNC levels handed to its `serve`."""

    def callback(**flags: Any) -> None:
        from replication.cql._base import SYNC

        log_to_stderr(role)
        asyncio.run(serve(build(**flags), SYNC))

    return click.Command(
        name=role,
        params=list(serve_command.params),
        callback=callback,
        help=f"`{role} serve` with the global keyspace at QUORUM/EACH_QUORUM (the sync baseline).",
    )


@click.group("sync-baseline", hidden=True)
def sync_baseline() -> None:
    """Dev only: the benchmarks' sync baseline (started by `cellfed up --mode sync`)."""


sync_baseline.add_command(
    _sync(router_main.serve_command, router_main.router_process, router_main.serve, "router")
)
sync_baseline.add_command(_sync(cell_main.serve_command, cell_main.cell_process, cell_main.serve, "cell"))
