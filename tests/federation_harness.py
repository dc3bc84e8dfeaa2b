"""A small real federation for tests, started by the same launcher as `cellfed up` (localfed.launcher):
three sites in three regions on the suite's 3-DC Cassandra, each a cell controller with one test-driver
compute agent and a router, all separate processes, with WAN-emulating delay proxies between sites
(great-circle RTTs halved to keep the suite quick; their order, which placement uses, is kept)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cellfed.v1 import common_pb2

from cellapi.client import Client
from localfed.launcher import LocalFederation
from localfed.sites import SiteSpec
from localfed.view import wait_ready

_ROOMY = {"vcpus": 64, "memory_mb": 131_072, "disk_gb": 4_000, "hosts": 1}
SITES = (
    # Paris is kept small: two 16 GB instances fill it, so spill-over can be tested.
    SiteSpec("par1", "eu-west", "Paris", 48.86, 2.35, vcpus=32, memory_mb=40_000, disk_gb=1_000, hosts=1),
    SiteSpec("nyc1", "us-east", "New York", 40.71, -74.01, **_ROOMY),
    SiteSpec("sin1", "ap-south", "Singapore", 1.35, 103.82, **_ROOMY),
)
RTT_SCALE = 0.5


class Federation(LocalFederation):
    def __init__(self, workdir: Path, contact_points: list[str], *, tls: bool = False) -> None:
        base = LocalFederation.for_tests(workdir, SITES, contact_points, RTT_SCALE)
        super().__init__(
            base.root, base.sites, base.contact_points, base.rtt, keyspace=base.keyspace, tls=tls
        )

    def client(self, site: str | list[str], token: str = "acme", **kw: Any) -> Client:
        sites = [site] if isinstance(site, str) else site
        return Client([self.router(s) for s in sites], self.tokens.get(token, token), ca=self.ca, **kw)

    async def stop(self) -> None:  # type: ignore[override]
        super().stop()


@asynccontextmanager
async def running_federation(
    workdir: Path, contact_points: list[str], *, tls: bool = False
) -> AsyncIterator[Federation]:
    """A started federation in which every router sees every cell HEALTHY; stopped on exit. With `tls`,
    every gRPC link is mTLS (localfed.pki)."""
    federation = Federation(workdir, contact_points, tls=tls)
    try:
        await federation.start()
        await wait_ready(federation, timeout_s=60, healths=frozenset({common_pb2.HEALTHY}))
        yield federation
    finally:
        await federation.stop()
