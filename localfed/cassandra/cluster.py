"""Runs a local multi-DC Cassandra cluster described by a ClusterSpec: start, status, stop, kill, restart.

A cluster lives in its directory: `cluster.json` (the spec and bundle used) and, per node, rendered config,
data, logs and a `pid` file. Every command works from that directory alone, so `status` or `kill` can run
in another process than `up`. A pid counts as a node only if /proc shows it running that node's config,
so a recycled pid is never signalled.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedlib.errors import ConfigError, NotFound, Unavailable
from localfed.cassandra import bundle
from localfed.cassandra.node_config import (
    ClusterSpec,
    NodeSpec,
    jvm_argv,
    node_paths,
    nodes,
    render_logback,
    render_rackdc,
    render_yaml,
    spec_from_dict,
    spec_to_dict,
)
from replication.cql.session import CqlSession, connect, probe_write_all

log = logging.getLogger(__name__)

MANIFEST = "cluster.json"
# The global keyspace `up` creates; the store takes keyspace names as parameters (DESIGN.md).
GLOBAL_KEYSPACE = "cellfed_global"
# Children started by this process, kept so they are reaped (no zombies) in long-lived callers like pytest.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Cluster:
    """A cluster as recorded on disk."""

    spec: ClusterSpec
    cassandra_home: Path
    java: str

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        return nodes(self.spec)

    @property
    def contact_points(self) -> list[str]:
        return [n.address for n in self.nodes]


@dataclass(frozen=True)
class NodeStatus:
    name: str
    dc: str
    address: str
    pid: int | None
    state: str  # "up" (CQL port answers), "starting" (process alive, port closed) or "down"
    log: str


def default_dir() -> Path:
    override = os.environ.get("CELLFED_STATE_DIR")
    return Path(override) / "cassandra" if override else bundle.repo_root() / ".state" / "cassandra"


def load(directory: Path) -> Cluster:
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise NotFound(
            f"no cluster in {directory} (no {MANIFEST}); start one with `cellfed cassandra up`"
        ) from None
    return Cluster(spec_from_dict(data["spec"]), Path(data["cassandra_home"]), data["java"])


def _save(cluster: Cluster) -> None:
    data = {
        "version": 1,
        "spec": spec_to_dict(cluster.spec),
        "cassandra_home": str(cluster.cassandra_home),
        "java": cluster.java,
        "nodes": [vars(n) for n in cluster.nodes],  # for scripts; derived from the spec
    }
    path = cluster.spec.directory / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


# --- processes -----------------------------------------------------------------------------------------


def node_pid(spec: ClusterSpec, node: NodeSpec) -> int | None:
    """The node's pid if that process is alive and runs this node's config, else None."""
    paths = node_paths(spec, node)
    try:
        pid = int((paths.root / "pid").read_text())
    except (OSError, ValueError):
        return None
    child = _CHILDREN.get(pid)
    if child is not None:
        # Our own unreaped child cannot have a recycled pid; and /proc/<pid>/cmdline reads empty for a
        # moment while exec() is still setting up the new image, so it is no proof of death.
        if child.poll() is None:
            return pid
        del _CHILDREN[pid]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # empty for a zombie
    except OSError:
        return None
    return pid if str(paths.yaml).encode() in cmdline else None


def _write_config(cluster: Cluster, node: NodeSpec, defaults: dict[str, Any]) -> None:
    paths = node_paths(cluster.spec, node)
    for d in (paths.conf, paths.data, paths.commitlog, paths.saved_caches, paths.logs):
        d.mkdir(parents=True, exist_ok=True)
    conf = render_yaml(cluster.spec, node, defaults)
    paths.yaml.write_text(yaml.safe_dump(conf, default_flow_style=False, sort_keys=True))
    (paths.conf / "cassandra-rackdc.properties").write_text(render_rackdc(node))
    (paths.conf / "logback.xml").write_text(render_logback(paths))


def _spawn(cluster: Cluster, node: NodeSpec) -> int:
    paths = node_paths(cluster.spec, node)
    argv = jvm_argv(cluster.spec, node, java=cluster.java, cassandra_home=cluster.cassandra_home)
    with open(paths.console_log, "ab") as out:
        # Own session: the node outlives the command that started it and ignores its terminal's signals.
        proc = subprocess.Popen(
            argv, cwd=paths.root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    _CHILDREN[proc.pid] = proc
    (paths.root / "pid").write_text(f"{proc.pid}\n")
    log.info("started %s (%s, dc %s) pid %d", node.name, node.address, node.dc, proc.pid)
    return proc.pid


def _check_ports_free(spec: ClusterSpec, node: NodeSpec) -> None:
    ports = spec.ports
    for port in (ports.storage, ports.native):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((node.address, port))
            except OSError as exc:
                raise ConfigError(
                    f"--address-base: {node.address}:{port} (node {node.name}) is in use ({exc.strerror}); "
                    "another cluster may run there: pick another --address-base",
                    field="address_base",
                ) from None


def _port_open(address: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _log_tail(spec: ClusterSpec, node: NodeSpec, lines: int = 15) -> str:
    paths = node_paths(spec, node)
    text = ""
    for path in (paths.console_log, paths.system_log):
        if path.is_file():
            text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
    return text.strip()


async def _wait_cql(cluster: Cluster, targets: list[NodeSpec], deadline: float) -> None:
    """Until every target's CQL port accepts; fails at once if a target process dies."""
    loop = asyncio.get_running_loop()
    pending = list(targets)
    while pending:
        for node in list(pending):
            if node_pid(cluster.spec, node) is None:
                raise Unavailable(
                    f"cassandra node {node.name} exited while starting:\n{_log_tail(cluster.spec, node)}"
                )
            if await asyncio.to_thread(_port_open, node.address, cluster.spec.ports.native):
                pending.remove(node)
        if pending and loop.time() > deadline:
            names = ", ".join(f"{n.name} ({n.address})" for n in pending)
            raise Unavailable(f"cassandra: CQL port not open in time on {names}")
        if pending:
            await asyncio.sleep(0.25)


def _signal_and_wait(spec: ClusterSpec, targets: list[NodeSpec], sig: int, wait_s: float) -> list[NodeSpec]:
    """Send `sig` to the live targets and wait for them to exit; return those still alive."""
    for node in targets:
        pid = node_pid(spec, node)
        if pid is not None:
            os.kill(pid, sig)
    deadline = time.monotonic() + wait_s
    alive = [n for n in targets if node_pid(spec, n) is not None]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [n for n in alive if node_pid(spec, n) is not None]
    return alive


# --- operations ----------------------------------------------------------------------------------------


async def up(spec: ClusterSpec, *, deadline_s: float = 120.0, apply_schema: bool = True) -> Cluster:
    """Start every node of `spec` that is not running, together, and return once a CL.ALL write works.

    Idempotent: an already running cluster is only probed. Nothing is written before the spec, java and
    the address range check out. Nodes this call started are stopped again if the cluster never gets ready.
    """
    java = bundle.find_java()
    if (spec.directory / MANIFEST).is_file():
        recorded = load(spec.directory).spec
        if recorded != spec:
            raise ConfigError(
                f"--dir {spec.directory} holds another cluster (dcs {','.join(recorded.dcs)}, "
                f"{recorded.nodes_per_dc} per dc from {recorded.address_base}, rf {recorded.rf}); "
                f"use another --dir or `cellfed cassandra down --purge --dir {spec.directory}`",
                field="dir",
            )
    stopped = [n for n in nodes(spec) if node_pid(spec, n) is None]
    for node in stopped:
        _check_ports_free(spec, node)
    installed = await asyncio.to_thread(bundle.ensure_bundle)  # npm may take a while the first time
    cluster = Cluster(spec, installed.home, java)
    spec.directory.mkdir(parents=True, exist_ok=True)
    _save(cluster)
    for node in stopped:
        _write_config(cluster, node, installed.defaults)
    for node in stopped:
        _spawn(cluster, node)
    try:
        session = await _wait_ready(cluster, stopped, deadline_s)
    except BaseException:
        _signal_and_wait(spec, stopped, signal.SIGKILL, 10.0)
        raise
    try:  # a schema failure leaves the (ready) cluster running: fix and re-run `up`, it is idempotent
        if apply_schema and await _apply_schema_hook(session, spec):
            log.info("schema applied")
    finally:
        await session.aclose()
    return cluster


async def _wait_ready(cluster: Cluster, started: list[NodeSpec], deadline_s: float) -> CqlSession:
    """Wait for the started nodes' CQL ports, then for a CL.ALL write; return the session that did it."""
    loop = asyncio.get_running_loop()
    begin = loop.time()
    deadline = begin + deadline_s
    await _wait_cql(cluster, started, deadline)
    log.info("CQL ports open after %.1fs", loop.time() - begin)
    first = started[0] if started else cluster.nodes[0]
    session = await asyncio.to_thread(
        connect, [first.address], first.dc, port=cluster.spec.ports.native, timeout_s=5.0, retries=5
    )
    try:
        replication = dict.fromkeys(cluster.spec.dcs, cluster.spec.nodes_per_dc)
        await probe_write_all(session, replication=replication, deadline_s=max(1.0, deadline - loop.time()))
    except BaseException:
        await session.aclose()
        raise
    log.info("CL.ALL probe write succeeded after %.1fs", loop.time() - begin)
    return session


async def _apply_schema_hook(session: CqlSession, spec: ClusterSpec) -> bool:
    """SCHEMA HOOK: apply the project schema (global keyspace over the started DCs at --rf) when
    replication.cql.migrate is present. A bare Cassandra cluster knows no cells, so `cells` is empty."""
    if importlib.util.find_spec("replication.cql.migrate") is None:
        log.info("replication.cql.migrate not present: schema not applied")
        return False
    migrate = importlib.import_module("replication.cql.migrate")
    await migrate.apply_schema(
        session,
        global_keyspace=GLOBAL_KEYSPACE,
        dcs=dict.fromkeys(spec.dcs, spec.rf),
        cells=[],
        known_dcs=dict.fromkeys(spec.dcs, spec.nodes_per_dc),  # the CL.ALL probe just saw them all
    )
    return True


def status(directory: Path) -> list[NodeStatus]:
    cluster = load(directory)
    out = []
    for node in cluster.nodes:
        pid = node_pid(cluster.spec, node)
        if pid is None:
            state = "down"
        else:
            state = "up" if _port_open(node.address, cluster.spec.ports.native) else "starting"
        log_path = node_paths(cluster.spec, node).system_log
        out.append(NodeStatus(node.name, node.dc, node.address, pid, state, str(log_path)))
    return out


def down(directory: Path, *, grace_s: float = 30.0, purge: bool = False) -> list[str]:
    """SIGTERM every node (Cassandra flushes on it), SIGKILL what is left after `grace_s`; names stopped."""
    cluster = load(directory)
    running = [n for n in cluster.nodes if node_pid(cluster.spec, n) is not None]
    stubborn = _signal_and_wait(cluster.spec, running, signal.SIGTERM, grace_s)
    if stubborn:
        log.warning("SIGKILL after %.0fs: %s", grace_s, ", ".join(n.name for n in stubborn))
        left = _signal_and_wait(cluster.spec, stubborn, signal.SIGKILL, 10.0)
        if left:
            raise Unavailable(f"cassandra nodes would not die: {', '.join(n.name for n in left)}")
    if purge:
        shutil.rmtree(directory)  # load() above proved this is a cluster dir, not an arbitrary one
    return [n.name for n in running]


def select_node(cluster: Cluster, selector: str) -> NodeSpec:
    """A node by name (eu-west-1), address, or DC when that DC has one node."""
    exact = [n for n in cluster.nodes if selector in (n.name, n.address)]
    in_dc = [n for n in cluster.nodes if n.dc == selector]
    if exact:
        return exact[0]
    if len(in_dc) == 1:
        return in_dc[0]
    known = ", ".join(f"{n.name} ({n.address})" for n in cluster.nodes)
    if in_dc:
        raise ConfigError(f"--node {selector}: dc has {len(in_dc)} nodes, name one: {known}", field="node")
    raise ConfigError(f"--node {selector!r} matches no node; nodes: {known}", field="node")


def kill_node(directory: Path, selector: str) -> NodeSpec:
    """SIGKILL one node (a crash, for failure tests) and wait until it is gone."""
    cluster = load(directory)
    node = select_node(cluster, selector)
    if _signal_and_wait(cluster.spec, [node], signal.SIGKILL, 10.0):
        raise Unavailable(f"cassandra node {node.name} survived SIGKILL")
    return node


async def start_node(directory: Path, selector: str, *, deadline_s: float = 90.0) -> NodeSpec:
    """Start one stopped node with its existing data; ready when its CQL port opens and, if every other
    node is up, when a CL.ALL write coordinated by its DC works."""
    cluster = load(directory)
    node = select_node(cluster, selector)
    if node_pid(cluster.spec, node) is None:
        _check_ports_free(cluster.spec, node)
        _spawn(cluster, node)
    others_up = all(node_pid(cluster.spec, n) is not None for n in cluster.nodes)
    if others_up:
        session = await _wait_ready(cluster, [node], deadline_s)
        await session.aclose()
    else:
        await _wait_cql(cluster, [node], asyncio.get_running_loop().time() + deadline_s)
    return node


# --- supervision (localfed.supervisor restarts nodes this process started) ------------------------------


def child_process(directory: Path, selector: str) -> subprocess.Popen[bytes] | None:
    """The node's process if this process started it and it still runs, else None."""
    cluster = load(directory)
    pid = node_pid(cluster.spec, select_node(cluster, selector))
    return _CHILDREN.get(pid) if pid is not None else None


def respawn(directory: Path, selector: str) -> subprocess.Popen[bytes]:
    """Start one node again with its data, config, address and ports; returns at once (see
    wait_serving). ConfigError when its ports are taken."""
    cluster = load(directory)
    node = select_node(cluster, selector)
    _check_ports_free(cluster.spec, node)
    return _CHILDREN[_spawn(cluster, node)]


def wait_serving(
    directory: Path, selector: str, proc: subprocess.Popen[bytes], deadline_s: float = 90.0
) -> None:
    """Until the node's CQL port accepts; Unavailable if it exits first or the deadline passes."""
    cluster = load(directory)
    node = select_node(cluster, selector)
    deadline = time.monotonic() + deadline_s
    while not _port_open(node.address, cluster.spec.ports.native):
        if proc.poll() is not None:
            raise Unavailable(f"cassandra node {node.name} exited while starting (code {proc.returncode})")
        if time.monotonic() > deadline:
            raise Unavailable(f"cassandra node {node.name}: CQL port not open within {deadline_s:.0f}s")
        time.sleep(0.25)
