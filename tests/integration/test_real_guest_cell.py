"""A real QEMU guest through the Cell API: a cell controller and a compute agent on the real libvirtd,
the project's own tiny guest image, the suite's real Cassandra. Build -> the guest's own marker and its
user data on the serial console -> stop -> start (marker again) -> delete.

Opt-in (CELLFED_REAL_GUESTS=1, root): it starts libvirtd if needed and takes well under a minute of guest
time. `CELLFED_REAL_GUESTS=1 bash dev/test tests/integration/test_real_guest_cell.py` runs it alone."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cellfed.v1 import cell_pb2, common_pb2

from cell.compute.guest_initramfs import MARKER_POWEROFF, MARKER_UP, MARKER_USERDATA
from localfed.real_guests import QEMU_URI, ensure_libvirtd, real_guests_skip_reason
from tests.cell_harness import CellHarness
from tests.integration.test_cell import TENANT, build_request, wait_until

_SKIP = real_guests_skip_reason()
pytestmark = [
    pytest.mark.realguests,
    pytest.mark.cassandra,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]
DEADLINE_S = 120.0  # TCG boots in 3-10 s here; a loaded 2-core machine can take far longer
# The tiny guest: no memory hard limit, because these machines' containers lack CAP_SYS_RESOURCE, which
# libvirt needs to raise RLIMIT_MEMLOCK for one (the start fails). CPU and disk isolation stay on.
TINY = common_pb2.Flavor(name="m1.tiny", vcpus=1, memory_mb=128, disk_gb=1, cpu_shares=512,
                         cpu_quota_us=100_000, cpu_period_us=100_000)  # fmt: skip


@pytest.fixture
async def real_cell(cassandra_cluster: Any, tmp_path: Path) -> AsyncIterator[tuple[CellHarness, Path]]:
    from replication.cql.migrate import apply_schema, read_topology
    from replication.cql.session import connect

    ensure_libvirtd()
    cell_id = f"r{uuid.uuid4().hex[:8]}"
    keyspace = f"rg_{uuid.uuid4().hex[:10]}"
    session = await asyncio.to_thread(connect, cassandra_cluster.contact_points, "eu-west")
    try:
        await apply_schema(session, global_keyspace=keyspace, dcs=dict.fromkeys(cassandra_cluster.dcs, 1),
                           cells=[(cell_id, "eu-west")], known_dcs=await read_topology(session))  # fmt: skip
    finally:
        await session.aclose()
    # QEMU runs as libvirt-qemu: the config drive and serial log need a directory it can traverse.
    state = Path(tempfile.mkdtemp(prefix="cellfed-realcell-"))
    os.chmod(state, 0o755)
    harness = CellHarness(cell_id, tmp_path, cassandra_cluster.contact_points, "eu-west", keyspace)
    try:
        harness.start_controller(build_timeout_s=DEADLINE_S)
        harness.start_agent("qemu1", vcpus=2, memory_mb=1024, libvirt_uri=QEMU_URI, state_dir=state)
        await harness.wait_hosts_up(1)
        yield harness, state
    finally:
        harness.stop()
        _remove_domains_of(cell_id)  # a failed test must not leave a guest running on libvirtd
        shutil.rmtree(state, ignore_errors=True)


def _remove_domains_of(cell_id: str) -> None:
    from cell.compute.libvirt_host import LibvirtHost

    with LibvirtHost(QEMU_URI) as host:
        for domain in host.list_domains():
            if domain.metadata is not None and domain.metadata.cell == cell_id:
                host.delete(domain.name)


def read_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def wait_for_log(log: Path, needle: str, after: int = 0) -> int:
    """Waits until `needle` appears past offset `after` (from 0 if QEMU truncated the file on a new
    boot); returns the log's length then, to use as the next `after`."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_S:
        text = await asyncio.to_thread(read_log, log)
        if needle in text[after if len(text) >= after else 0 :]:
            return len(text)
        await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(read_log, log))[-2000:] or "(no serial log)"
    raise AssertionError(f"{needle!r} not on the serial console within {DEADLINE_S} s:\n{tail}")


async def test_real_guest_through_the_cell_api(real_cell: tuple[CellHarness, Path]) -> None:
    cell, state = real_cell
    channel, stub = cell.stub()
    timings: dict[str, float] = {}
    ref = lambda iid: cell_pb2.CellInstanceRequest(instance_id=iid, tenant=TENANT)  # noqa: E731
    started = time.monotonic()
    inst = await stub.BuildInstance(
        build_request(cell.cell_id, "guest", TINY, image="tiny-guest", user_data=b"hello from cellfed\n"),
        timeout=30,
    )
    iid = inst.instance_id
    log = state / "console" / f"{iid}.log"
    await wait_until(stub, [iid], {common_pb2.ACTIVE}, timeout_s=DEADLINE_S)
    await wait_for_log(log, f"{MARKER_UP} {iid}")
    timings["build->marker"] = time.monotonic() - started
    await wait_for_log(log, f"{MARKER_USERDATA} hello from cellfed")

    t = time.monotonic()
    await stub.StopInstance(ref(iid), timeout=10)
    offset = await wait_for_log(log, MARKER_POWEROFF)
    timings["stop->poweroff"] = time.monotonic() - t

    t = time.monotonic()
    await stub.StartInstance(ref(iid), timeout=10)
    await wait_for_log(log, f"{MARKER_UP} {iid}", after=offset)
    timings["start->marker"] = time.monotonic() - t

    deleted = await stub.DeleteInstance(ref(iid), timeout=10)
    assert deleted.status in (common_pb2.DELETING, common_pb2.DELETED)
    await wait_until(stub, [iid], {common_pb2.DELETED}, timeout_s=60)
    timings["total"] = time.monotonic() - started
    await channel.close()
    print("\nreal guest via Cell API (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
