"""Options every benchmark that starts its own Cassandra shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def cassandra_address_base(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Each benchmark has its own default range, so two can run at once; tests pass their own."""
    return click.option(
        "--cassandra-address-base",
        "address_base",
        default=default,
        show_default=True,
        help="Loopback address of the benchmark's first Cassandra node (one per DC follows).",
    )
