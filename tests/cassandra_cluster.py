"""pytest plugin: one real 3-DC Cassandra cluster per test session, run by cellfed's own tooling.

It listens on 127.0.3.11-13 and lives in a pytest temp dir, so it never collides with a developer's
cluster (`cellfed cassandra up` defaults to 127.0.0.11). Two suites running at once on one machine need
different addresses: set CELLFED_TEST_CASSANDRA_ADDRESS_BASE for one of them. The project schema is NOT
applied: tests that need it apply it themselves, which also exercises the migration path.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fedlib.errors import ConfigError
from localfed.cassandra import cluster
from localfed.cassandra.node_config import ClusterSpec, nodes

DCS = ("eu-west", "us-east", "ap-south")
ADDRESS_BASE = os.environ.get("CELLFED_TEST_CASSANDRA_ADDRESS_BASE", "127.0.3.11")
START_DEADLINE_S = 120.0


@dataclass(frozen=True)
class CassandraCluster:
    """Handle to the session's cluster: where it is and how to break and mend it."""

    dir: Path
    dcs: tuple[str, ...]
    contact_points: list[str]
    port: int
    _addresses: dict[str, str]

    def address_of(self, dc: str) -> str:
        """The address of the (single) node of `dc`."""
        return self._addresses[dc]

    def kill(self, dc: str) -> None:
        """SIGKILL the node of `dc` and wait until it is gone."""
        cluster.kill_node(self.dir, dc)

    async def restart(self, dc: str, *, deadline_s: float = 90.0) -> None:
        """Start the node of `dc` again with its data; returns when a CL.ALL write from its DC works."""
        await cluster.start_node(self.dir, dc, deadline_s=deadline_s)


@pytest.fixture(scope="session")
async def cassandra_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CassandraCluster]:
    directory = tmp_path_factory.mktemp("cassandra").absolute()
    spec = ClusterSpec(dcs=DCS, nodes_per_dc=1, address_base=ADDRESS_BASE, directory=directory)
    try:
        try:
            await cluster.up(spec, deadline_s=START_DEADLINE_S, apply_schema=False)
        except ConfigError as exc:
            if exc.field != "address_base":
                raise
            pytest.fail(f"{exc.message}\n(another test run? set CELLFED_TEST_CASSANDRA_ADDRESS_BASE)")
        yield CassandraCluster(
            dir=directory,
            dcs=DCS,
            contact_points=[n.address for n in nodes(spec)],
            port=spec.ports.native,
            _addresses={n.dc: n.address for n in nodes(spec)},
        )
    finally:
        if (directory / cluster.MANIFEST).is_file():
            cluster.down(directory)
