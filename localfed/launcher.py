"""Runs a whole federation on one machine: per site a cell controller, its compute agents and a router
(separate processes), one Cassandra DC per region, and WAN-emulating delay proxies on every path from a
router to another site's cell (localfed.wan_proxy, RTTs from localfed.sites). `cellfed up`, the tests and
the benchmarks all use this one launcher, so what is measured is what users run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fedlib.networks import to_declaration
from fedlib.pki.identity import Identity, Role
from localfed.pki import LocalPki
from localfed.processes import free_port, spawn, stop_all, wait_ready
from localfed.site_networks import site_network
from localfed.sites import SiteSpec, rtt_matrix
from localfed.supervisor import Restartable, Supervisor
from localfed.wan_proxy import DelayProxy, ProxyHost

STATE_FILE = "federation.json"
LOCAL_FEDERATION = "cellfed-local"  # the trust domain of `cellfed up --tls`
TEST_URI = "test:///default"  # libvirt's test driver: real API, fake hypervisor
Progress = Callable[[str], None]


@dataclass
class LocalFederation:
    root: Path
    sites: tuple[SiteSpec, ...]
    contact_points: list[str]  # the Cassandra cluster (one DC per region), already running
    rtt: dict[tuple[str, str], float]
    keyspace: str = "cellfed_global"
    libvirt_uri: str = TEST_URI
    # p2p: the design, a router per site. central: one router at the first site takes every client's
    # requests (Nova cells v2's shape). sync: p2p, but the global keyspace at EACH_QUORUM/QUORUM (Galera's).
    mode: str = "p2p"
    host_grace_s: float = 2.0
    # mTLS on every gRPC link, from a federation PKI made under root/pki (localfed.pki); cells then serve
    # their Agent API on a port of its own.
    tls: bool = False
    pki: LocalPki | None = None
    # Each site's cell declares a provider network from the documentation prefixes (localfed.site_networks:
    # a /26 and a /64 per site), so guests get a NIC and an address. Off for the tests and benchmarks
    # that create more instances per site than a /26 holds.
    networks: bool = False
    cell_ports: dict[str, int] = field(default_factory=dict)
    agent_ports: dict[str, int] = field(default_factory=dict)
    router_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # (from site, to site) -> the delayed paths from the one's router to the other's cell and router
    proxies: dict[tuple[str, str], list[DelayProxy]] = field(default_factory=dict)
    dials: dict[str, dict[str, str]] = field(default_factory=dict)  # site -> {endpoint: proxy to dial}
    client_proxies: dict[str, DelayProxy] = field(default_factory=dict)
    proxy_host: ProxyHost = field(default_factory=ProxyHost)
    tokens: dict[str, str] = field(default_factory=dict)
    # name -> the command it runs: chosen once at first start (ports included), reused by every restart
    argvs: dict[str, list[str]] = field(default_factory=dict)
    supervisor: Supervisor = field(init=False)
    _state_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        # Every process this launcher starts is supervised: one that exits while the federation is meant
        # to be up comes back with the same argv, hence the same ports, so whatever dials it finds it again.
        self.supervisor = Supervisor(self.procs, on_change=self._state_changed)
        if self.tls and self.mode == "sync":
            raise ValueError("tls runs in p2p or central mode: the sync baseline's commands are plaintext")

    @classmethod
    def for_tests(
        cls, root: Path, sites: tuple[SiteSpec, ...], contact_points: list[str], scale: float
    ) -> LocalFederation:
        return cls(
            root, sites, contact_points, rtt_matrix(sites, scale), keyspace=f"fed_{uuid.uuid4().hex[:8]}"
        )

    async def start(self, progress: Progress = lambda _: None, *, apply_schema: bool = True) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if apply_schema:
            progress("applying the schema")
            await self.apply_schema()
        self._tokens()
        # Router ports are chosen before any router starts, so each can be given a delayed path to every
        # peer (peers find each other through the directory and probe each other across the WAN). Cell
        # ports too: a restarted cell must come back where its agents and the routers' proxies dial it.
        self.router_ports = {s.site: free_port() for s in self.router_sites()}
        self.cell_ports = {s.site: free_port() for s in self.sites}
        if self.tls:
            self.pki = LocalPki(self.root, LOCAL_FEDERATION, {s.region for s in self.sites})
            self.agent_ports = {s.site: free_port() for s in self.sites}
        if self.mode == "central":
            await self._register_routerless_sites()
        # Each tier starts all at once (a process spends its first second importing, on either core),
        # and is waited for before the next, which dials it.
        progress(f"starting {len(self.sites)} cell controllers")
        await self._spawn_all({f"cell:{s.site}": self._cell_argv(s) for s in self.sites})
        progress(f"starting {sum(s.hosts for s in self.sites)} compute agents")
        await self._spawn_all(
            {
                f"agent:{s.site}-h{n}": self._agent_argv(s, n)
                for s in self.sites
                for n in range(1, s.hosts + 1)
            }
        )
        progress(f"starting {len(self.router_sites())} routers")
        await self._spawn_all({f"router:{s.site}": self._router_argv(s) for s in self.router_sites()})
        self.write_state()

    async def _spawn_all(self, argvs: dict[str, list[str]]) -> list[tuple[str, dict[str, str]]]:
        """Starts every component named in `argvs` ('cell:par1' -> its arguments, metrics port added
        here), waits for each one's READY line, then hands it to the supervisor."""
        started = {}
        for name, argv in argvs.items():
            self.metrics_ports[name] = free_port()
            self.argvs[name] = [*argv, "--metrics-listen", f"127.0.0.1:{self.metrics_ports[name]}"]
            # in procs at once: if a sibling never gets ready, stop() still finds and stops this one
            self.procs[name] = started[name] = self._spawn(name)
        out = []
        for name, proc in started.items():
            out.append((name, await asyncio.to_thread(wait_ready, proc, name)))
            self.supervisor.adopt(name, proc, self._restartable(name))
        return out

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        return spawn(self.argvs[name], self.root / "logs" / f"{name.replace(':', '-')}.log")

    def _restartable(self, name: str) -> Restartable:
        def ready(proc: subprocess.Popen[bytes]) -> None:
            wait_ready(proc, name)  # its ports are fixed in its argv: nothing to learn from the READY line

        return Restartable(spawn=lambda: self._spawn(name), ready=ready)

    def supervise_cassandra(self, directory: Path) -> None:
        """Supervise the Cassandra nodes this process started in `directory` (one per region DC), named
        'cassandra:<dc>'; a restarted node keeps its data, address and ports."""
        from localfed.cassandra import cluster

        for node in cluster.load(directory).nodes:
            proc = cluster.child_process(directory, node.name)
            if proc is not None:  # else not started by this process: someone else's to supervise
                self.supervisor.adopt(f"cassandra:{node.dc}", proc, _cassandra_node(directory, node.name))

    async def apply_schema(self) -> None:
        from replication.cql.migrate import apply_schema, read_topology
        from replication.cql.session import connect

        session = await asyncio.to_thread(connect, self.contact_points, self.sites[0].region)
        try:
            await apply_schema(
                session,
                global_keyspace=self.keyspace,
                dcs={s.region: 1 for s in self.sites},
                cells=[(s.cell, s.region) for s in self.sites],
                known_dcs=await read_topology(session),
            )
        finally:
            await session.aclose()

    async def _register_routerless_sites(self) -> None:
        """A router announces its site; in the central baseline only the first site has one, so the
        others are registered as an operator registers cells in Nova cells v2, served by that router."""
        from replication.cql.session import connect
        from replication.cql.store import CqlStore
        from replication.model import Site, SiteState

        session = await asyncio.to_thread(connect, self.contact_points, self.sites[0].region)
        try:
            directory = CqlStore(session, keyspace=self.keyspace).directory
            now_ms = int(time.time() * 1000)
            central = self.router(self.sites[0].site)
            for s in self.sites[1:]:
                await directory.put_site(
                    Site(s.site, s.region, s.lat, s.lon, central, SiteState.ENABLED, now_ms)
                )
        finally:
            await session.aclose()

    def _tokens(self) -> None:
        from cellapi.auth import generate_keypair, mint, read_private_key

        keys = self.root / "keys"
        if not (keys / "k1.pub").exists():
            generate_keypair(keys, "k1")
        private = read_private_key(keys, "k1")
        people = (
            ("acme", "acme", ["user"]),
            ("other", "other", ["user"]),
            ("lister", "lister", ["user"]),
            ("admin", "ops", ["admin", "user"]),
        )
        for name, tenant, roles in people:
            self.tokens[name] = mint(
                private, "k1", subject=name, tenant=tenant, roles=roles, ttl_s=24 * 3600, now_s=time.time()
            )

    def _cell_argv(self, s: SiteSpec) -> list[str]:
        return [
            *self._serve("cell"), "--cell-id", s.cell, "--site", s.site, "--region", s.region,
            "--listen", f"127.0.0.1:{self.cell_ports[s.site]}", "--cassandra", ",".join(self.contact_points),
            "--local-dc", s.region,
            "--global-keyspace", self.keyspace, "--host-grace-s", str(self.host_grace_s),
            *self._tls_flags(s, Role.CELL, s.cell),
            *(["--agent-listen", self.agent_api(s.site)] if self.agent_ports else []),
            *(["--networks-file", str(self._networks_file(s))] if self.networks else []),
        ]  # fmt: skip

    def _networks_file(self, s: SiteSpec) -> Path:
        """The site's declaration, written once: a restart reads the same networks."""
        path = self.root / "networks" / f"{s.cell}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            index = next(i for i, site in enumerate(self.sites) if site.site == s.site)
            path.write_text(json.dumps([to_declaration(site_network(index))], indent=2) + "\n")
        return path

    def _agent_argv(self, s: SiteSpec, n: int) -> list[str]:
        host = f"{s.site}-h{n}"
        tls = ["--site", s.site, *self._tls_flags(s, Role.AGENT, host)] if self.pki else []
        return [
            "agent", "serve", "--host-id", host, "--cell-id", s.cell,
            "--controller", self.agent_api(s.site), "--libvirt-uri", self.libvirt_uri,
            "--vcpus", str(s.vcpus), "--memory-mb", str(s.memory_mb), "--disk-gb", str(s.disk_gb),
            "--state-dir", str(self.root / host), *tls,
        ]  # fmt: skip

    def agent_api(self, site: str) -> str:
        """Where a site's agents dial their controller: its own Agent API port, or the shared one."""
        return f"127.0.0.1:{self.agent_ports.get(site) or self.cell_ports[site]}"

    def _tls_flags(self, s: SiteSpec, role: Role, component_id: str) -> list[str]:
        """`--tls-dir` of a component, its certificate issued now (a restart reuses the argv and files)."""
        if self.pki is None:
            return []
        identity = Identity(LOCAL_FEDERATION, s.site, role, component_id)
        self.pki.issue(s.region, identity)
        return ["--tls-dir", str(self.pki.home(identity))]

    @property
    def ca(self) -> bytes | None:
        """What a client trusts to talk TLS to the routers; None when the federation is plaintext."""
        return None if self.pki is None else self.pki.ca_pem

    def _wan_path(self, src: str, dst: str, port: int) -> list[str]:
        """A delay proxy from site `src` to a component of site `dst` on `port`, as a --dial override."""
        proxy = self.proxy_host.add("127.0.0.1", port, self.rtt[(src, dst)] / 2)
        self.proxies.setdefault((src, dst), []).append(proxy)
        self.dials.setdefault(src, {})[f"127.0.0.1:{port}"] = proxy.address
        return ["--dial", f"127.0.0.1:{port}={proxy.address}"]

    def _router_argv(self, s: SiteSpec) -> list[str]:
        dial = []
        for other in self.sites:
            if other.site != s.site:
                dial += self._wan_path(s.site, other.site, self.cell_ports[other.site])
                if other.site in self.router_ports:
                    dial += self._wan_path(s.site, other.site, self.router_ports[other.site])
        return [
            *self._serve("router"), "--router-id", f"{s.site}-r1", "--site", s.site, "--region", s.region,
            "--lat", str(s.lat), "--lon", str(s.lon), "--listen", f"127.0.0.1:{self.router_ports[s.site]}",
            "--cassandra", ",".join(self.contact_points), "--local-dc", s.region,
            "--global-keyspace", self.keyspace, "--keys-dir", str(self.root / "keys"), *dial,
            *self._tls_flags(s, Role.ROUTER, f"{s.site}-r1"),
        ]  # fmt: skip

    def _serve(self, component: str) -> list[str]:
        """The command that runs a router or cell: the production `serve`, or in sync mode the same
        process with the global keyspace at EACH_QUORUM/QUORUM (localfed.baseline_cli)."""
        return ["sync-baseline", component] if self.mode == "sync" else [component, "serve"]

    def router_sites(self) -> tuple[SiteSpec, ...]:
        return self.sites[:1] if self.mode == "central" else self.sites

    def router(self, site: str) -> str:
        return f"127.0.0.1:{self.router_ports[site]}"

    def client_endpoint(self, site: str) -> str:
        """Where a client placed at `site` sends its requests: its own router, or in central mode the one
        central router across the emulated WAN."""
        if site in self.router_ports:
            return self.router(site)
        central = self.sites[0].site
        proxy = self.client_proxies.get(site)
        if proxy is None:
            proxy = self.proxy_host.add(
                "127.0.0.1", self.router_ports[central], self.rtt[(site, central)] / 2
            )
            self.client_proxies[site] = proxy
        return proxy.address

    def kill(self, what: str) -> None:
        """SIGKILL one component and keep it down: 'cell:sin1', 'router:par1', 'agent:nyc1-h1'."""
        self.supervisor.hold(what)
        proc = self.procs[what]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def signal(self, what: str, sig: int) -> None:
        """Send `sig` to one component's process group as a crash or a hang would (SIGKILL, SIGSTOP,
        SIGCONT); the supervisor restarts it if it exits."""
        os.killpg(self.procs[what].pid, sig)

    def _paths_of(self, site: str) -> list[DelayProxy]:
        paths = [p for (a, b), ps in self.proxies.items() if site in (a, b) for p in ps]
        return paths + [p for s, p in self.client_proxies.items() if site in (s, self.sites[0].site)]

    def cut(self, site: str) -> None:
        """Partition `site` from the others: every proxied path into or out of it drops (router to cell,
        router to router, a remote client to the central router)."""
        for proxy in self._paths_of(site):
            self.proxy_host.cut(proxy)

    def heal(self, site: str) -> None:
        for proxy in self._paths_of(site):
            self.proxy_host.heal(proxy)

    def _state_changed(self) -> None:
        if (self.root / STATE_FILE).exists():
            self.write_state()

    def write_state(self) -> None:
        watches = self.supervisor.watches()
        state = {
            "supervisor": os.getpid(),
            "sites": [s.site for s in self.sites],
            "routers": {s: self.router(s) for s in self.router_ports},
            "cassandra": self.contact_points,
            "cells": {s: f"127.0.0.1:{p}" for s, p in self.cell_ports.items()},
            "cell_ids": [s.cell for s in self.sites],
            "libvirt_uri": self.libvirt_uri,
            "metrics": {name: f"http://127.0.0.1:{p}/metrics" for name, p in self.metrics_ports.items()},
            "pids": {name: proc.pid for name, proc in self.procs.items()},
            "supervision": {
                name: {
                    "phase": w.phase.value,
                    "restarts": w.restarts,
                    "failures": w.failures,
                    "last_exit": w.last_exit,
                }
                for name, w in watches.items()
            },
            "tokens": self.tokens,
            "ca": None if self.pki is None else str(self.pki.ca_file),  # cellctl --ca, when TLS is on
        }
        path = self.root / STATE_FILE
        with self._state_lock:  # watcher threads write it too; each write replaces the file whole
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2))
            tmp.chmod(0o600)  # it holds tokens
            tmp.replace(path)

    def stop(self) -> None:
        self.supervisor.stop()  # first: nothing may be started again while everything stops
        stop_all(list(self.procs.values()))
        self.proxy_host.stop()
        (self.root / STATE_FILE).unlink(missing_ok=True)


def _cassandra_node(directory: Path, name: str) -> Restartable:
    from localfed.cassandra import cluster

    def ready(proc: subprocess.Popen[bytes]) -> None:
        cluster.wait_serving(directory, name, proc)

    return Restartable(spawn=lambda: cluster.respawn(directory, name), ready=ready)
