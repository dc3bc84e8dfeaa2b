"""A site cut off from the others, driven through `cellctl` as its users and a remote user would: every
delayed path into or out of sin1 drops (router to cell and router to router, both ways). Its own users
keep creating, getting and listing there; a user at par1 still reads sin1's instances (from the index,
marked stale) and is told which site a mutation needs. After the heal, everything works as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cellfed.v1 import common_pb2

from localfed.view import wait_ready
from tests.cellctl_harness import cellctl, field
from tests.federation_harness import Federation, running_federation

pytestmark = [pytest.mark.cassandra, pytest.mark.libvirt]
CREATE = ("--flavor", "m1.tiny", "--image", "debian-12", "--wait", "--wait-timeout", "30")


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(tmp_path_factory.mktemp("cut"), cassandra_cluster.contact_points) as f:
        yield f


async def test_a_cut_site_keeps_serving_its_own_users(fed: Federation) -> None:
    before = await cellctl(fed, "create", "before-cut", *CREATE, site="sin1")
    assert before.returncode == 0 and field(before.stdout, "site") == "sin1", before.stderr
    old = field(before.stdout, "id")
    fed.cut("sin1")
    try:
        made = await cellctl(fed, "create", "during-cut", *CREATE, site="sin1")
        assert made.returncode == 0, made.stderr
        assert field(made.stdout, "site") == "sin1" and field(made.stdout, "status") == "ACTIVE"
        new = field(made.stdout, "id")
        got = await cellctl(fed, "get", new, site="sin1")
        assert got.returncode == 0 and field(got.stdout, "status") == "ACTIVE", got.stderr
        listed = await cellctl(fed, "-o", "json", "list", "--all", site="sin1")
        assert listed.returncode == 0, listed.stderr
        page = json.loads(listed.stdout)
        assert {old, new} <= {i["instanceId"] for i in page["instances"]}
        assert "sin1-c1" not in page.get("unreachableCells", [])  # its own cell answered live

        far = await cellctl(fed, "-o", "json", "get", old, site="par1")
        assert far.returncode == 0, far.stderr
        seen = json.loads(far.stdout)
        assert seen["status"] == "UNKNOWN" and seen["stale"] and seen["site"] == "sin1", seen
        stop = await cellctl(fed, "stop", old, site="par1")
        assert stop.returncode != 0 and stop.stderr.startswith("error: UNAVAILABLE: "), stop.stderr
        assert "sin1" in stop.stderr
    finally:
        fed.heal("sin1")
    await wait_ready(fed, timeout_s=60, healths=frozenset({common_pb2.HEALTHY}))
    after = await cellctl(fed, "-o", "json", "get", new, site="par1")
    assert after.returncode == 0 and json.loads(after.stdout)["status"] == "ACTIVE", after.stdout
    for iid in (old, new):
        deleted = await cellctl(fed, "delete", iid, site="par1")
        assert deleted.returncode == 0, deleted.stderr
