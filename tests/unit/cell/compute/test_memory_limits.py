"""Memory hard limits where the host can apply them, none where it cannot (and the capability check)."""

from __future__ import annotations

import random
from pathlib import Path

from cellfed.v1 import agent_pb2

from cell.compute.domains import HostLayout, domain_spec
from cell.compute.main import may_limit_memory
from fedlib.catalog import FLAVORS
from fedlib.ids import new_instance_id
from fedrpc.flavors import flavor_to_proto


def _spawn() -> agent_pb2.SpawnDomain:
    iid = str(new_instance_id("par1-c1", 1_700_000_000_000, random.getrandbits(80)))
    flavor = flavor_to_proto(FLAVORS["m1.tiny"])
    return agent_pb2.SpawnDomain(
        instance_id=iid, tenant="acme", flavor=flavor, image="debian-12", cell="par1-c1"
    )


def test_the_flavors_hard_limit_applies_only_where_the_host_can(tmp_path: Path) -> None:
    spawn = _spawn()
    limited = domain_spec(spawn, HostLayout(tmp_path, "qemu"), None)
    assert limited.isolation.memory_hard_limit_mib == FLAVORS["m1.tiny"].memory_hard_limit_mb
    unlimited = domain_spec(spawn, HostLayout(tmp_path, "qemu", memory_hard_limits=False), None)
    assert unlimited.isolation.memory_hard_limit_mib is None
    assert unlimited.isolation.cpu_quota_us == limited.isolation.cpu_quota_us  # CPU isolation stays


def test_cap_sys_resource_is_read_from_the_effective_set(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nCapEff:\t000001ffffffffff\n")
    assert may_limit_memory(status)
    status.write_text("Name:\tpython\nCapEff:\t000001fffeffffff\n")  # bit 24 cleared
    assert not may_limit_memory(status)
    assert may_limit_memory(tmp_path / "absent")  # unknown: try, and let a failure say why
