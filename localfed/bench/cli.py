"""`cellfed bench ...`: benchmarks that print figures (never pass/fail tests)."""

from __future__ import annotations

import click

from localfed.bench.cell import cell
from localfed.bench.chaos import chaos
from localfed.bench.evacuate import evacuate
from localfed.bench.locality import locality
from localfed.bench.mtls import mtls
from localfed.bench.partition import partition
from localfed.bench.router import router
from localfed.bench.store import store


@click.group("bench")
def bench() -> None:
    """Benchmarks of the real parts; they print figures."""


bench.add_command(store)
bench.add_command(cell)
bench.add_command(locality)
bench.add_command(router)
bench.add_command(partition)
bench.add_command(chaos)
bench.add_command(evacuate)
bench.add_command(mtls)
