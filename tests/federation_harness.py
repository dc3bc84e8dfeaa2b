"""A small real federation for tests: three sites in three regions (one Cassandra DC each, the suite's
cluster), each with a cell controller, one test-driver compute agent and a router, all separate
processes; every router reaches the other sites' cells through WAN-emulating delay proxies
(localfed.wan_proxy) with a scaled-down RTT matrix, so "nearest" means what it means across a WAN."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellapi.auth import generate_keypair, mint, read_private_key
from cellapi.client import Client
from localfed.processes import spawn, stop_all, wait_ready
from localfed.wan_proxy import DelayProxy, ProxyHost


@dataclass(frozen=True)
class SiteSpec:
    site: str
    region: str
    lat: float
    lon: float
    vcpus: int
    memory_mb: int
    disk_gb: int

    @property
    def cell(self) -> str:
        return f"{self.site}-c1"


SITES = (
    SiteSpec("par1", "eu-west", 48.86, 2.35, vcpus=32, memory_mb=40_000, disk_gb=1_000),
    SiteSpec("nyc1", "us-east", 40.71, -74.01, vcpus=64, memory_mb=131_072, disk_gb=4_000),
    SiteSpec("sin1", "ap-south", 1.35, 103.82, vcpus=64, memory_mb=131_072, disk_gb=4_000),
)
# Round trips between sites in ms: the real ones (Paris-New York ~80, Paris-Singapore ~160, New York-
# Singapore ~230) halved to keep the suite quick; the order, which is what placement uses, is kept.
RTT_MS = {("par1", "nyc1"): 40, ("par1", "sin1"): 80, ("nyc1", "sin1"): 115}


def rtt(a: str, b: str) -> float:
    return 0.0 if a == b else RTT_MS.get((a, b)) or RTT_MS[(b, a)]


@dataclass
class Federation:
    workdir: Path
    contact_points: list[str]
    keyspace: str = field(default_factory=lambda: f"fed_{uuid.uuid4().hex[:8]}")
    cell_ports: dict[str, int] = field(default_factory=dict)
    router_ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    proxies: dict[tuple[str, str], DelayProxy] = field(default_factory=dict)  # (router site, cell site)
    proxy_host: ProxyHost = field(default_factory=ProxyHost)
    tokens: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        await self._schema()
        keys = self.workdir / "keys"
        generate_keypair(keys, "k1")
        private = read_private_key(keys, "k1")
        for name, tenant, roles in (
            ("acme", "acme", ["user"]),
            ("other", "other", ["user"]),
            ("lister", "lister", ["user"]),
            ("admin", "ops", ["admin", "user"]),
        ):
            self.tokens[name] = mint(
                private, "k1", subject=name, tenant=tenant, roles=roles, ttl_s=3600, now_s=time.time()
            )
        for s in SITES:
            self._start_cell(s)
        for s in SITES:
            await self._start_router(s, keys)

    async def _schema(self) -> None:
        from replication.cql.migrate import apply_schema, read_topology
        from replication.cql.session import connect

        session = await asyncio.to_thread(connect, self.contact_points, "eu-west")
        try:
            await apply_schema(
                session,
                global_keyspace=self.keyspace,
                dcs={s.region: 1 for s in SITES},
                cells=[(s.cell, s.region) for s in SITES],
                known_dcs=await read_topology(session),
            )
        finally:
            await session.aclose()

    def _start_cell(self, s: SiteSpec) -> None:
        points = ",".join(self.contact_points)
        proc = spawn(
            [
                "cell",
                "serve",
                "--cell-id",
                s.cell,
                "--site",
                s.site,
                "--region",
                s.region,
                "--listen",
                "127.0.0.1:0",
                "--cassandra",
                points,
                "--local-dc",
                s.region,
                "--global-keyspace",
                self.keyspace,
                "--host-grace-s",
                "2",
            ],
            self.workdir / f"{s.cell}.log",
        )
        self.procs[f"cell:{s.site}"] = proc
        self.cell_ports[s.site] = int(wait_ready(proc, f"cell {s.cell}")["port"])
        agent = spawn(
            [
                "agent",
                "serve",
                "--host-id",
                f"{s.site}-h1",
                "--cell-id",
                s.cell,
                "--controller",
                f"127.0.0.1:{self.cell_ports[s.site]}",
                "--vcpus",
                str(s.vcpus),
                "--memory-mb",
                str(s.memory_mb),
                "--disk-gb",
                str(s.disk_gb),
                "--state-dir",
                str(self.workdir / f"{s.site}-h1"),
            ],
            self.workdir / f"{s.site}-h1.log",
        )
        self.procs[f"agent:{s.site}"] = agent
        wait_ready(agent, f"agent {s.site}-h1")

    async def _start_router(self, s: SiteSpec, keys: Path) -> None:
        dial = []
        for other in SITES:
            if other.site != s.site:
                proxy = self.proxy_host.add(
                    "127.0.0.1", self.cell_ports[other.site], rtt(s.site, other.site) / 2
                )
                self.proxies[(s.site, other.site)] = proxy
                dial += ["--dial", f"127.0.0.1:{self.cell_ports[other.site]}={proxy.address}"]
        proc = spawn(
            [
                "router",
                "serve",
                "--router-id",
                f"{s.site}-r1",
                "--site",
                s.site,
                "--region",
                s.region,
                "--lat",
                str(s.lat),
                "--lon",
                str(s.lon),
                "--listen",
                "127.0.0.1:0",
                "--cassandra",
                ",".join(self.contact_points),
                "--local-dc",
                s.region,
                "--global-keyspace",
                self.keyspace,
                "--keys-dir",
                str(keys),
                *dial,
            ],
            self.workdir / f"{s.site}-router.log",
        )
        self.procs[f"router:{s.site}"] = proc
        ready = await asyncio.to_thread(wait_ready, proc, f"router {s.site}")
        self.router_ports[s.site] = int(ready["port"])

    def router(self, site: str) -> str:
        return f"127.0.0.1:{self.router_ports[site]}"

    def client(self, site: str | list[str], token: str = "acme", **kw: Any) -> Client:
        sites = [site] if isinstance(site, str) else site
        return Client([self.router(s) for s in sites], self.tokens.get(token, token), **kw)

    def kill(self, what: str) -> None:
        """SIGKILL a process: 'cell:sin1', 'router:par1', 'agent:nyc1'."""
        proc = self.procs[what]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    async def stop(self) -> None:
        stop_all(list(self.procs.values()))
        self.proxy_host.stop()
