"""The set-up the WAN benchmarks share: one Cassandra DC per region behind the emulated WAN
(localfed.cassandra_wan), and federations started over it the way `cellfed up` starts one: at loopback
speed, then the WAN switched on, then every router sees every cell. The cluster's data is throwaway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from fedlib.errors import NotFound
from localfed.cassandra_wan import CassandraWan
from localfed.launcher import LocalFederation
from localfed.sites import SiteSpec


@contextlib.asynccontextmanager
async def wan_cluster(
    root: Path, sites: Sequence[SiteSpec], rtt: Mapping[tuple[str, str], float], address_base: str
) -> AsyncIterator[tuple[CassandraWan, list[str]]]:
    """A fresh cluster under `root/cassandra` (a crashed run's leftovers go first); its WAN and contact
    points. Stopped and purged on exit, whatever happened."""
    from localfed.cassandra import cluster
    from localfed.cassandra_wan import start_wan_cluster
    from localfed.wan_proxy import ProxyHost

    with contextlib.suppress(NotFound):
        cluster.down(root / "cassandra", purge=True)
    fabric = ProxyHost()
    try:
        yield await start_wan_cluster(root, sites, rtt, fabric, address_base)
    finally:
        fabric.stop()
        with contextlib.suppress(NotFound):
            cluster.down(root / "cassandra", purge=True)


async def start_over_wan(fed: LocalFederation, wan: CassandraWan) -> None:
    """Starts `fed` (schema already applied) with the WAN off, then turns it on and waits until every
    router sees every cell taking work. DDL and start-up are set-up, not what is measured."""
    from localfed.cassandra_wan import wait_links
    from localfed.view import wait_ready

    dcs = [s.region for s in fed.sites]
    wan.disable()
    await wait_links(fed.contact_points, dcs)
    await fed.start(apply_schema=False)
    wan.enable()
    await wait_links(fed.contact_points, dcs)
    await wait_ready(fed)
