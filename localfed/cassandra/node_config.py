"""What a local multi-DC Cassandra cluster looks like, as data: the validated spec, the nodes it implies,
and every file and argument a node needs (cassandra.yaml, rackdc properties, logback, JVM argv).

Pure: no I/O, no clock, no processes. `cluster.py` writes what this renders and runs what it describes,
so the shape of a cluster can be tested in milliseconds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedlib.errors import ConfigError

# DC names appear in keyspace replication maps, node names and metric labels: DNS-label like, as fedlib.names.
_DC_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

# Java 17 runs Cassandra 2.1 only when the internals it reaches into are opened to it (see ENVIRONMENT.md).
_ADD_EXPORTS = ("sun.nio.ch", "jdk.internal.ref", "jdk.internal.misc")
_ADD_OPENS = (
    "java.lang", "java.lang.reflect", "java.lang.ref", "java.util", "java.util.concurrent",
    "java.util.concurrent.atomic", "java.util.concurrent.locks", "java.io", "java.nio", "java.net",
    "sun.nio.ch", "jdk.internal.misc", "jdk.internal.ref",
    # jamm (the prepared-statement cache's memory meter) walks object graphs into these: without them every
    # PREPARE fails with InaccessibleObjectException.
    "java.nio.charset", "sun.nio.cs", "java.math", "java.util.regex", "java.security", "java.text",
    "java.lang.invoke", "java.time", "java.util.stream", "java.util.function", "jdk.internal.loader",
    "java.lang.module", "java.net", "java.util.zip", "java.lang.annotation",
)  # fmt: skip


@dataclass(frozen=True)
class Ports:
    """Every node listens on the same ports; nodes differ by loopback address."""

    storage: int = 7000
    ssl_storage: int = 7001
    native: int = 9042
    rpc: int = 9160


@dataclass(frozen=True)
class ClusterSpec:
    """A whole local cluster. Construction validates, so an invalid spec never reaches the disk."""

    dcs: tuple[str, ...]
    nodes_per_dc: int
    address_base: str
    directory: Path
    rf: int = 1
    ports: Ports = field(default_factory=Ports)
    cluster_name: str = "cellfed-local"
    heap_mb: int = 384
    # When set, nodes advertise consecutive addresses from here to each other (broadcast_address) while
    # listening on their own: a WAN-emulating proxy on each broadcast address (localfed.cassandra_wan)
    # then delays or cuts inter-DC traffic. Clients still connect to the listen addresses directly.
    broadcast_base: str | None = None

    def __post_init__(self) -> None:
        _check_dcs(self.dcs)
        if self.nodes_per_dc < 1:
            raise ConfigError(
                f"--nodes-per-dc must be at least 1, got {self.nodes_per_dc}", field="nodes_per_dc"
            )
        if not 1 <= self.rf <= self.nodes_per_dc:
            raise ConfigError(
                f"--rf {self.rf} must be between 1 and --nodes-per-dc ({self.nodes_per_dc})", field="rf"
            )
        _check_addresses(self.address_base, len(self.dcs) * self.nodes_per_dc)
        if self.broadcast_base is not None:
            _check_addresses(self.broadcast_base, len(self.dcs) * self.nodes_per_dc)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    dc: str
    rack: str
    address: str
    broadcast: str = ""  # what peers dial; equal to `address` without a WAN fabric

    def __post_init__(self) -> None:
        if not self.broadcast:
            object.__setattr__(self, "broadcast", self.address)


@dataclass(frozen=True)
class NodePaths:
    root: Path
    conf: Path
    data: Path
    commitlog: Path
    saved_caches: Path
    logs: Path

    @property
    def yaml(self) -> Path:
        return self.conf / "cassandra.yaml"

    @property
    def console_log(self) -> Path:
        return self.logs / "console.log"

    @property
    def system_log(self) -> Path:
        return self.logs / "system.log"


def _check_dcs(dcs: Sequence[str]) -> None:
    if not dcs:
        raise ConfigError("--dcs must name at least one datacenter, e.g. eu-west,us-east", field="dcs")
    for dc in dcs:
        if not _DC_NAME.match(dc):
            raise ConfigError(
                f"--dcs entry {dc!r} must be 2-32 lowercase letters, digits or '-', comma-separated "
                "(e.g. eu-west,us-east)",
                field="dcs",
            )
    if len(set(dcs)) != len(dcs):
        raise ConfigError(f"--dcs names a datacenter twice: {','.join(dcs)}", field="dcs")


def _check_addresses(base: str, count: int) -> None:
    try:
        first = ipaddress.IPv4Address(base)
    except ValueError:
        raise ConfigError(f"--address-base {base!r} is not an IPv4 address", field="address_base") from None
    last_int = int(first) + count - 1
    # Only loopback: nodes of several local clusters share a machine and must never listen on a real network.
    if first not in _LOOPBACK or first == _LOOPBACK.network_address or last_int >= int(_LOOPBACK[-1]):
        raise ConfigError(
            f"--address-base {base} must leave {count} addresses inside 127.0.0.0/8 (e.g. 127.0.0.11)",
            field="address_base",
        )


def parse_dcs(text: str) -> tuple[str, ...]:
    """`eu-west,us-east` -> ('eu-west', 'us-east'); validation happens in ClusterSpec."""
    return tuple(part.strip() for part in text.split(",")) if text.strip() else ()


def nodes(spec: ClusterSpec) -> tuple[NodeSpec, ...]:
    """Nodes in DC order, addresses consecutive from address_base; names are `<dc>-<n>`."""
    base = int(ipaddress.IPv4Address(spec.address_base))
    bcast = int(ipaddress.IPv4Address(spec.broadcast_base or spec.address_base))
    out = []
    for d, dc in enumerate(spec.dcs):
        for n in range(spec.nodes_per_dc):
            i = d * spec.nodes_per_dc + n
            address, broadcast = str(ipaddress.IPv4Address(base + i)), str(ipaddress.IPv4Address(bcast + i))
            out.append(
                NodeSpec(
                    name=f"{dc}-{n + 1}", dc=dc, rack=f"rack{n + 1}", address=address, broadcast=broadcast
                )
            )
    return tuple(out)


def node_paths(spec: ClusterSpec, node: NodeSpec) -> NodePaths:
    root = spec.directory / "nodes" / node.name
    return NodePaths(
        root=root,
        conf=root / "conf",
        data=root / "data",
        commitlog=root / "commitlog",
        saved_caches=root / "saved_caches",
        logs=root / "logs",
    )


def render_yaml(spec: ClusterSpec, node: NodeSpec, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """cassandra.yaml for one node: the bundle's defaults (cassandra.json) with our overrides."""
    paths = node_paths(spec, node)
    seeds = ",".join(n.broadcast for n in nodes(spec))
    conf = dict(defaults)
    conf.update(
        {
            "cluster_name": spec.cluster_name,
            "num_tokens": 16,  # 256 vnodes make a tiny node slow to start and to compute ranges
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    # Every node a seed: nodes start together and any survivor can re-introduce a restart.
                    "parameters": [{"seeds": seeds}],
                }
            ],
            "listen_address": node.address,
            "broadcast_address": node.broadcast,
            "rpc_address": node.address,
            "storage_port": spec.ports.storage,
            "ssl_storage_port": spec.ports.ssl_storage,
            "native_transport_port": spec.ports.native,
            "rpc_port": spec.ports.rpc,
            "start_native_transport": True,
            "start_rpc": False,
            "endpoint_snitch": "GossipingPropertyFileSnitch",
            "auto_bootstrap": False,  # a fresh cluster has no data to stream; bootstrap only adds delay
            "auto_snapshot": False,
            "data_file_directories": [str(paths.data)],
            "commitlog_directory": str(paths.commitlog),
            "saved_caches_directory": str(paths.saved_caches),
            # Durability: periodic sync lost every acknowledged write on SIGKILL (ENVIRONMENT.md); batch lost
            # none. Cassandra refuses batch mode if a period is also set, hence the pop below.
            "commitlog_sync": "batch",
            "commitlog_sync_batch_window_in_ms": 2,
            "commitlog_segment_size_in_mb": 8,  # keeps many local clusters small on disk
            # Nagle plus delayed ACK adds tens of ms to cross-DC replication of small mutations.
            "inter_dc_tcp_nodelay": True,
        }
    )
    conf.pop("commitlog_sync_period_in_ms", None)
    return conf


def render_rackdc(node: NodeSpec) -> str:
    """GossipingPropertyFileSnitch reads the node's own DC and rack from this file on the classpath."""
    return f"dc={node.dc}\nrack={node.rack}\n"


def render_logback(paths: NodePaths) -> str:
    """INFO to a per-node file: the bundled config logs DEBUG to stdout, which is slow and floods."""
    return f"""<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{paths.system_log}</file>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE" /></root>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
</configuration>
"""


def jvm_argv(spec: ClusterSpec, node: NodeSpec, *, java: str, cassandra_home: Path) -> list[str]:
    """The command line that runs one node directly on Java 17 (bin/cassandra's CMS flags are rejected)."""
    paths = node_paths(spec, node)
    home = cassandra_home
    heap = f"{spec.heap_mb}m"
    argv = [java, f"-Xms{heap}", f"-Xmx{heap}", "-Xmn64m", "-Xss256k", "-XX:+UseSerialGC"]
    argv += [f"--add-exports=java.base/{pkg}=ALL-UNNAMED" for pkg in _ADD_EXPORTS]
    argv += [f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in _ADD_OPENS]
    argv += [
        f"-javaagent:{home / 'lib' / 'jamm-0.2.6.jar'}",
        "-Djava.net.preferIPv4Stack=true",
        # A small ring delay and no gossip settle wait: nodes start together on one machine.
        "-Dcassandra.ring_delay_ms=3000",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        # As root, JNA would mlockall() the whole heap: more RSS and a slower start.
        "-Djna.nosys=true",
        "-Djna.nounpack=true",
        "-Dcassandra.boot_without_jna=true",
        f"-Dcassandra.config=file://{paths.yaml}",
        f"-Dcassandra-rackdc.properties=file://{paths.conf / 'cassandra-rackdc.properties'}",
        f"-Dlogback.configurationFile={paths.conf / 'logback.xml'}",
        f"-Dcassandra.logdir={paths.logs}",
        "-Dcassandra-foreground=yes",
        # The node's conf dir first so its rackdc/logback win over the bundle's conf/.
        "-cp",
        f"{paths.conf}:{home / 'conf'}:{home / 'lib'}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]
    return argv


def spec_to_dict(spec: ClusterSpec) -> dict[str, Any]:
    """The manifest form of a spec (JSON-safe), read back by `spec_from_dict`."""
    return {
        "dcs": list(spec.dcs),
        "nodes_per_dc": spec.nodes_per_dc,
        "address_base": spec.address_base,
        "directory": str(spec.directory),
        "rf": spec.rf,
        "ports": vars(spec.ports).copy(),
        "cluster_name": spec.cluster_name,
        "heap_mb": spec.heap_mb,
        "broadcast_base": spec.broadcast_base,
    }


def spec_from_dict(data: Mapping[str, Any]) -> ClusterSpec:
    return ClusterSpec(
        dcs=tuple(data["dcs"]),
        nodes_per_dc=int(data["nodes_per_dc"]),
        address_base=str(data["address_base"]),
        directory=Path(data["directory"]),
        rf=int(data["rf"]),
        ports=Ports(**data["ports"]),
        cluster_name=str(data["cluster_name"]),
        heap_mb=int(data["heap_mb"]),
        broadcast_base=data.get("broadcast_base"),
    )
