"""The image build file agrees with the project and the manifests (no container engine here: the build
itself cannot run in CI; this checks what it is built from and what the manifests expect of it)."""

from __future__ import annotations

import json
import re
import tomllib

from tests.k8s.objects import ROOT, SITES, argv, containers, find, rendered, workloads

DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions(name: str) -> list[str]:
    """Arguments of every `name` instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.MULTILINE)]


def _cellfed_containers() -> list[dict]:
    return [
        c
        for site in SITES
        for w in workloads(rendered(site))
        for c in containers(w)
        if not c["image"].startswith("cassandra:")
    ]


def test_base_image_and_build_steps() -> None:
    assert {f.split()[0] for f in _instructions("FROM")} == {"python:3.11-slim-bookworm"}
    build = " ".join(_instructions("RUN"))
    for package in ("gcc", "pkg-config", "libvirt-dev"):
        assert re.search(rf"apt-get install [^&]*\b{package}\b", build), package
    assert "compute" in PYPROJECT["project"]["optional-dependencies"]
    assert '".[compute]"' in build and '"cellfed[compute]"' in build
    assert build.index("tools/build_proto.py") < build.index("pip wheel"), "generate protos before packaging"


def test_entrypoint_is_the_production_cellfed_command() -> None:
    (entrypoint,) = _instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["cellfed-server"]
    assert PYPROJECT["project"]["scripts"]["cellfed-server"] == "fedrpc.entry:main"
    assert "cellfed" in PYPROJECT["project"]["scripts"]  # users keep `cellfed <command>` too
    for container in _cellfed_containers():
        words = argv(container)
        assert words[0] in ("cellfed-server", "sh"), words


def test_exposed_ports_and_user_match_the_manifests() -> None:
    exposed = {int(p) for line in _instructions("EXPOSE") for p in line.split()}
    used = {p["containerPort"] for c in _cellfed_containers() for p in c.get("ports", [])}
    assert used <= exposed, used - exposed
    (user,) = _instructions("USER")
    uid = int(user.split(":")[0])
    for site in SITES:
        for kind, name in (("Deployment", "router"), ("Deployment", "cell"), ("Job", "schema-apply")):
            obj = find(rendered(site), kind, name)
            if obj is not None:
                assert obj["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_agent_finds_the_baked_guest_image() -> None:
    agent = find(rendered(SITES[0]), "DaemonSet", "agent")
    assert agent is not None
    (init,) = agent["spec"]["template"]["spec"]["initContainers"]
    (env,) = [
        e
        for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "CELLFED_CACHE_DIR"
    ]
    assert f"ENV CELLFED_CACHE_DIR={env['value']}" in DOCKERFILE
    seed = re.search(r"cp -a (\S+)/\. ", init["args"][0])
    assert seed and seed.group(1) == "/opt/cellfed/cache-seed" and seed.group(1) in DOCKERFILE
    assert f"{env['value']}/" in init["args"][0]


def test_dockerignore_sends_every_source_the_build_needs() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*", "allow-list: everything else (.venv, .git, .state, gen/) stays out"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    packages.discard("cellfed")  # generated into gen/ by the build
    needed = packages | {"pyproject.toml", "setup.py", PYPROJECT["project"]["readme"], "tools", "proto"}
    assert needed <= allowed, needed - allowed
    assert all((ROOT / name).exists() for name in allowed)
