"""The federation the overlays describe hangs together: each site names one Cassandra DC everywhere,
the federation-wide lists cover every site, addresses point at Services that exist, and the workloads
have the shape the design requires (one cell controller, privileged agents on the libvirt socket,
durable Cassandra commit log, requests and limits everywhere)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.k8s.objects import (
    SITES,
    Obj,
    argv,
    cli_flags,
    containers,
    environment,
    expand,
    find,
    pod_spec,
    rendered,
    workloads,
)


def _workload(site: str, kind: str, name: str) -> Obj:
    obj = find(rendered(site), kind, name)
    assert obj is not None, f"{site}: no {kind}/{name}"
    return obj


def _container(site: str, kind: str, name: str, container: str | None = None) -> Obj:
    """The named container of a workload; by default its one main (non-init) container."""
    workload = _workload(site, kind, name)
    if container is None:
        (found,) = containers(workload, init=False)
    else:
        (found,) = [c for c in containers(workload) if c["name"] == container]
    return found


def _flags(site: str, kind: str, name: str) -> dict[str, str]:
    """The resolved `--flag=value`s of a cellfed container's command line."""
    container = _container(site, kind, name)
    env = environment(container, rendered(site))
    return cli_flags([expand(word, env) for word in argv(container)])


def _env(site: str, kind: str, name: str) -> dict[str, str]:
    return environment(_container(site, kind, name), rendered(site))


def _site_config(site: str) -> dict[str, str]:
    return _workload(site, "ConfigMap", "cellfed-site")["data"]


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split(":", 1) for item in text.split(","))


def _federation(site: str) -> dict[str, str]:
    return _workload(site, "ConfigMap", "cellfed-federation")["data"]


def _schema_sites() -> dict[str, str]:
    """region (DC) -> the site whose overlay runs its schema Job."""
    out: dict[str, str] = {}
    for site in SITES:
        if find(rendered(site), "Job", "schema-apply") is not None:
            dc = _flags(site, "Job", "schema-apply")["--local-dc"]
            assert dc not in out, f"two schema Jobs for {dc}: {out[dc]} and {site}"
            out[dc] = site
    return out


@pytest.mark.parametrize("site", SITES)
def test_site_names_one_cassandra_dc_everywhere(site: str) -> None:
    config = _site_config(site)
    dc = config["CELLFED_CASSANDRA_DC"]
    router, cell = _flags(site, "Deployment", "router"), _flags(site, "Deployment", "cell")
    cassandra = _env(site, "StatefulSet", "cassandra")
    assert router["--local-dc"] == cell["--local-dc"] == cassandra["CASSANDRA_DC"] == dc
    assert cassandra["CASSANDRA_ENDPOINT_SNITCH"] == "GossipingPropertyFileSnitch"
    assert cassandra["CASSANDRA_RACK"] == site
    # A cell's region is its Cassandra DC (cellfed cell serve --help), and the router's is the same.
    assert router["--region"] == cell["--region"] == dc
    assert router["--site"] == cell["--site"] == site
    assert cell["--cell-id"] == _flags(site, "DaemonSet", "agent")["--cell-id"] == config["CELLFED_CELL_ID"]
    if find(rendered(site), "Job", "schema-apply") is not None:
        assert _flags(site, "Job", "schema-apply")["--local-dc"] == dc
    assert {o["metadata"].get("namespace") for o in rendered(site) if o["kind"] != "Namespace"} == {
        f"cellfed-{site}"
    }


def test_federation_lists_cover_every_site() -> None:
    federations = [_federation(site) for site in SITES]
    assert all(f == federations[0] for f in federations), "cellfed-federation differs between sites"
    dcs = {dc: int(rf) for dc, rf in _pairs(federations[0]["CELLFED_DCS"]).items()}
    cells = _pairs(federations[0]["CELLFED_CELLS"])
    nodes: dict[str, int] = {}
    for site in SITES:
        dc = _site_config(site)["CELLFED_CASSANDRA_DC"]
        assert cells.get(_site_config(site)["CELLFED_CELL_ID"]) == dc, (
            f"{site}'s cell is not in CELLFED_CELLS"
        )
        nodes[dc] = nodes.get(dc, 0) + _workload(site, "StatefulSet", "cassandra")["spec"]["replicas"]
    assert len(cells) == len(SITES), "CELLFED_CELLS lists a cell no site runs"
    assert set(dcs) == set(nodes), "every DC of the global keyspace must be some site's DC, and back"
    for dc, rf in dcs.items():
        assert rf <= nodes[dc], f"{dc}: replication factor {rf} > {nodes[dc]} nodes"
    assert set(_schema_sites()) == set(dcs), "exactly one schema Job per region"
    for site in _schema_sites().values():
        flags = _flags(site, "Job", "schema-apply")
        assert _pairs(flags["--dcs"]) == _pairs(federations[0]["CELLFED_DCS"])
        assert _pairs(flags["--cells"]) == cells


def test_seeds_span_every_dc_and_name_real_pods() -> None:
    seeds = _federation(SITES[0])["CELLFED_CASSANDRA_SEEDS"].split(",")
    seeded: dict[str, int] = {}
    for seed in seeds:
        match = re.fullmatch(r"cassandra-(\d+)\.cassandra\.cellfed-([a-z0-9-]+)\.svc\.cluster\.local", seed)
        assert match, seed
        ordinal, site = int(match.group(1)), match.group(2)
        assert site in SITES, seed
        assert ordinal < _workload(site, "StatefulSet", "cassandra")["spec"]["replicas"], seed
        dc = _site_config(site)["CELLFED_CASSANDRA_DC"]
        seeded[dc] = seeded.get(dc, 0) + 1
    dcs = {_site_config(site)["CELLFED_CASSANDRA_DC"] for site in SITES}
    assert set(seeded) == dcs and min(seeded.values()) >= 2, seeded


def _service_port(site: str, name: str) -> set[int]:
    service = find(rendered(site), "Service", name)
    return {p["port"] for p in service["spec"]["ports"]} if service else set()


@pytest.mark.parametrize("site", SITES)
def test_addresses_point_at_services_and_pods(site: str) -> None:
    ns = f"cellfed-{site}"
    for kind_name, service in ((("Deployment", "router"), "router"), (("Deployment", "cell"), "cell")):
        flags = _flags(site, *kind_name)
        host, port = flags["--advertise"].rsplit(":", 1)
        assert host == f"{service}.{ns}.svc.cluster.local" and int(port) in _service_port(site, service)
        assert flags["--listen"] == f"0.0.0.0:{port}"
    host, port = _flags(site, "DaemonSet", "agent")["--controller"].rsplit(":", 1)
    assert host == "cell" and int(port) in _service_port(site, "cell")
    replicas = _workload(site, "StatefulSet", "cassandra")["spec"]["replicas"]
    for kind, name in (("Deployment", "router"), ("Deployment", "cell")):
        for point in _flags(site, kind, name)["--cassandra"].split(","):
            match = re.fullmatch(r"cassandra-(\d+)\.cassandra", point)
            assert match and int(match.group(1)) < replicas, point


@pytest.mark.parametrize("site", SITES)
def test_metrics_ports_are_declared_and_annotated(site: str) -> None:
    for kind, name in (("Deployment", "router"), ("Deployment", "cell"), ("DaemonSet", "agent")):
        workload = _workload(site, kind, name)
        port = int(_flags(site, kind, name)["--metrics-listen"].rsplit(":", 1)[1])
        assert {"name": "metrics", "containerPort": port} in _container(site, kind, name)["ports"]
        assert workload["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


@pytest.mark.parametrize("site", SITES)
def test_one_cell_controller_replaced_not_rolled(site: str) -> None:
    cell = _workload(site, "Deployment", "cell")
    assert cell["spec"]["replicas"] == 1 and cell["spec"]["strategy"] == {"type": "Recreate"}
    for kind, name, port in (("Deployment", "router", 7000), ("Deployment", "cell", 7100)):
        probes = _container(site, kind, name)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            # The gRPC ports speak TLS only, which kubelet's gRPC probes cannot: a TCP probe of the port.
            assert probes[probe]["tcpSocket"] == {"port": port}, f"{name} {probe}"


@pytest.mark.parametrize("site", SITES)
def test_every_grpc_link_is_mtls_from_mounted_certificates(site: str) -> None:
    for kind, name in (("Deployment", "router"), ("Deployment", "cell"), ("DaemonSet", "agent")):
        flags = _flags(site, kind, name)
        container = _container(site, kind, name)
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == flags["--tls-dir"]]
        assert mount.get("readOnly") is True
        (volume,) = [
            v for v in pod_spec(_workload(site, kind, name))["volumes"] if v["name"] == mount["name"]
        ]
        if name == "agent":  # the host's own identity, put on the node by the operator
            assert volume["hostPath"] == {"path": flags["--tls-dir"], "type": "Directory"}
            continue
        sources = volume["projected"]["sources"] if "projected" in volume else [volume]
        (secret,) = [source["secret"] for source in sources if "secret" in source]
        paths = {item["key"]: item["path"] for item in secret["items"]}
        stem = flags["--tls-name"]
        assert paths == {"tls.crt": f"{stem}.chain.pem", "tls.key": f"{stem}.key", "ca.crt": "ca.crt"}
        mode = (volume.get("projected") or volume["secret"])["defaultMode"]
        assert mode == 0o440  # with fsGroup: readable by the process's group only
        if name == "cell":  # client certificates it refuses, beside its files (fedrpc.tls_flags)
            assert any(s.get("configMap", {}).get("name") == "cellfed-revoked-certs" for s in sources)
        assert pod_spec(_workload(site, kind, name))["securityContext"]["fsGroup"] == 10001
    cell, agent = _flags(site, "Deployment", "cell"), _flags(site, "DaemonSet", "agent")
    agent_port = int(cell["--agent-listen"].rsplit(":", 1)[1])
    assert {"name": "agent-api", "containerPort": agent_port} in _container(site, "Deployment", "cell")[
        "ports"
    ]
    assert agent["--controller"] == f"cell:{agent_port}" and agent["--site"] == site  # its own cell only


@pytest.mark.parametrize("site", SITES)
def test_agent_drives_the_hosts_libvirt(site: str) -> None:
    agent = _workload(site, "DaemonSet", "agent")
    spec = pod_spec(agent)
    container = _container(site, "DaemonSet", "agent")
    flags = _flags(site, "DaemonSet", "agent")
    assert not spec.get("hostNetwork")
    assert container["securityContext"]["privileged"] is True
    assert flags["--host-id"] == "<fieldRef:spec.nodeName>"
    assert flags["--libvirt-uri"] == "qemu:///system"
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert host_paths[mounts["/var/run/libvirt"]] == "/var/run/libvirt"
    assert host_paths[mounts[flags["--state-dir"]]] == flags["--state-dir"], "QEMU opens the same paths"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": 9101}


@pytest.mark.parametrize("site", SITES)
def test_router_reads_the_public_keys(site: str) -> None:
    router = _workload(site, "Deployment", "router")
    container = _container(site, "Deployment", "router")
    (mount,) = [
        m
        for m in container["volumeMounts"]
        if m["mountPath"] == _flags(site, "Deployment", "router")["--keys-dir"]
    ]
    (volume,) = [v for v in pod_spec(router)["volumes"] if v["name"] == mount["name"]]
    keys = find(rendered(site), "ConfigMap", volume["configMap"]["name"])
    assert keys is not None
    for obj in rendered(site):
        for value in (obj.get("data") or {}).values():
            assert "PRIVATE KEY" not in value, f"{obj['metadata']['name']} holds a private key"
    assert not [o for o in rendered(site) if o["kind"] == "Secret"], "nothing secret is committed"


@pytest.mark.parametrize("site", SITES)
def test_cassandra_commit_log_is_durable(site: str) -> None:
    overrides = _workload(site, "ConfigMap", "cassandra-overrides")["data"]["cassandra-overrides.yaml"]
    settings = yaml.safe_load(overrides)
    assert settings["commitlog_sync"] == "batch"
    assert settings["commitlog_sync_period"] == "0ms"
    assert all(
        re.fullmatch(r"[a-z_]+", key) and not isinstance(v, dict | list) for key, v in settings.items()
    )
    sts = _workload(site, "StatefulSet", "cassandra")
    (volume,) = [
        v for v in pod_spec(sts)["volumes"] if v.get("configMap", {}).get("name") == "cassandra-overrides"
    ]
    init = _container(site, "StatefulSet", "cassandra", "config")
    assert any(m["name"] == volume["name"] for m in init["volumeMounts"])
    assert all(c["image"].startswith("cassandra:4.1") for c in containers(sts))


@pytest.mark.parametrize("site", SITES)
def test_every_container_has_requests_and_limits(site: str) -> None:
    for workload in workloads(rendered(site)):
        for container in containers(workload):
            resources = container.get("resources", {})
            for kind in ("cpu", "memory"):
                request = resources.get("requests", {}).get(kind)
                limit = resources.get("limits", {}).get(kind)
                assert request and limit, f"{workload['metadata']['name']}/{container['name']}: {kind}"


@pytest.mark.parametrize("site", SITES)
def test_images_are_pinned(site: str) -> None:
    images = {c["image"] for w in workloads(rendered(site)) for c in containers(w)}
    cellfed = {i for i in images if not i.startswith("cassandra:")}
    assert len(cellfed) == 1, f"one cellfed release per site, got {cellfed}"
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", image
