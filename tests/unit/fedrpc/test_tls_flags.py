"""`--tls-dir` of `router serve`, `cell serve` and `agent serve`: the certificate `cellfed pki issue leaf`
made for the component is found by its identity and loaded at start; anything wrong stops the process
before it serves, naming the file (or flag) and the fix."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest

from cell import main as cell_main
from cell.compute import main as agent_main
from cellapi.auth import pki_dir
from cellapi.router import main as router_main
from fedlib.pki.identity import Identity, Role

NOW = datetime.now(UTC)


def _issued(tmp_path: Path, site: str, role: Role, cid: str) -> Path:
    ca = tmp_path / "ca"
    if not ca.exists():
        pki_dir.init(ca, "acme", NOW, 30)
        pki_dir.issue_region(ca, "eu-west", NOW, 10)
    pki_dir.issue_leaf(ca, "eu-west", Identity("acme", site, role, cid), NOW, hours=4, dns=(), ips=())
    home = tmp_path / f"home-{role.value}"
    shutil.copytree(ca / "issued", home, dirs_exist_ok=True)
    for key in home.glob("*.key"):
        os.chmod(key, 0o600)
    return home


def _router(tls_dir: Path, site: str = "par1", **extra: object) -> router_main.RouterProcess:
    return router_main.router_process(
        router_id="r1", site_id=site, region="eu-west", lat=48.8, lon=2.3, listen="127.0.0.1:0", advertise="",
        metrics_listen="127.0.0.1:0", status_listen="", contact_points="127.0.0.1", local_dc="eu-west",
        global_keyspace="cellfed_global", keys_dir=tls_dir, dial=(), enrich_timeout_s=0.5, tls_dir=tls_dir,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def _cell(tls_dir: Path | None, **extra: object) -> cell_main.CellProcess:
    return cell_main.cell_process(
        cell_id="par1-c1", site_id="par1", region="eu-west", listen="127.0.0.1:0", advertise=None,
        metrics_listen="127.0.0.1:0", contact_points="127.0.0.1", local_dc="eu-west",
        global_keyspace="cellfed_global", policy="spread", host_grace_s=3.0, build_timeout_s=120.0,
        tls_dir=tls_dir, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def _agent(tls_dir: Path, site: str = "par1") -> agent_main.AgentProcess:
    return agent_main.agent_process(
        host_id="h1", cell_id="par1-c1", controller="127.0.0.1:1", libvirt_uri="test:///default",
        state_dir=tls_dir, vcpus=0, memory_mb=0, disk_gb=100, metrics_listen="127.0.0.1:0", reconcile_s=5.0,
        orphan_grace_s=600.0, memory_hard_limit="off", site_id=site, tls_dir=tls_dir,
    )  # fmt: skip


def test_each_component_finds_its_certificate_by_its_identity(tmp_path: Path) -> None:
    router = _router(_issued(tmp_path, "par1", Role.ROUTER, "r1"))
    assert (
        router.tls is not None
        and router.tls.material.identity.uri == "spiffe://acme/site/par1/role/router/id/r1"
    )
    cell = _cell(_issued(tmp_path, "par1", Role.CELL, "par1-c1"), agent_listen="127.0.0.1:0")
    assert cell.tls is not None and cell.tls.material.identity.role is Role.CELL
    assert cell.agent_listen == "127.0.0.1:0" and cell.revoked is not None  # no revoked.txt: nothing revoked
    agent = _agent(_issued(tmp_path, "par1", Role.AGENT, "h1"))
    assert agent.tls is not None and agent.tls.site == "par1"
    assert _cell(None).tls is None  # no --tls-dir: plaintext, as before


def test_a_certificate_of_another_role_or_site_or_a_missing_one_is_refused_at_start(tmp_path: Path) -> None:
    routers = _issued(tmp_path, "par1", Role.ROUTER, "r1")
    with pytest.raises(click.UsageError, match=r"par1-cell-par1-c1.key does not exist; .*cellfed pki issue"):
        _cell(routers)  # a router's directory has no cell certificate
    with pytest.raises(click.UsageError, match=r"is a router's .*expected a cell's"):
        _cell(routers, tls_name="par1-router-r1")  # named explicitly: the role is still checked
    with pytest.raises(click.UsageError, match="does not exist"):
        _router(routers, site="nyc1")  # looks for nyc1-router-r1
    with pytest.raises(click.UsageError, match="is for site par1, not nyc1"):
        _router(routers, site="nyc1", tls_name="par1-router-r1")
    agents = _issued(tmp_path, "par1", Role.AGENT, "h1")
    with pytest.raises(click.UsageError, match="needs --site"):
        _agent(agents, site="")


def test_a_readable_key_or_a_bad_revocation_list_is_refused_at_start(tmp_path: Path) -> None:
    cells = _issued(tmp_path, "par1", Role.CELL, "par1-c1")
    (cells / "revoked.txt").write_text("nothex\n")
    with pytest.raises(click.UsageError, match=r"revoked.txt:1: a revoked serial must be hexadecimal"):
        _cell(cells)
    (cells / "revoked.txt").unlink()
    os.chmod(cells / "par1-cell-par1-c1.key", 0o644)
    with pytest.raises(click.UsageError, match=r"chmod 600 .*par1-cell-par1-c1.key"):
        _cell(cells)


def test_a_key_readable_by_this_process_group_only_is_taken_as_kubernetes_mounts_secrets(
    tmp_path: Path,
) -> None:
    # A Secret mounted for a non-root container: root-owned, group fsGroup (our gid), mode 0440.
    cells = _issued(tmp_path, "par1", Role.CELL, "par1-c1")
    key = cells / "par1-cell-par1-c1.key"
    os.chown(key, -1, os.getegid())
    os.chmod(key, 0o440)
    assert _cell(cells).tls is not None
    os.chmod(key, 0o460)  # group may write: refused
    with pytest.raises(click.UsageError, match="chmod 600"):
        _cell(cells)
    os.chmod(key, 0o444)  # others may read: refused
    with pytest.raises(click.UsageError, match="chmod 600"):
        _cell(cells)
