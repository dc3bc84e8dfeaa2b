"""`cellfed up --real-guests`: the main job with real QEMU guests (the project's tiny kernel, TCG) on one
compute host per site. The sample workload boots, reads and deletes a guest at each site; when `up`
ends, no guest of this federation is left on the machine's libvirtd."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from localfed.real_guests import QEMU_URI, real_guests_skip_reason

_SKIP = real_guests_skip_reason()
pytestmark = [
    pytest.mark.realguests,
    pytest.mark.cassandra,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]
SITES = ("par1", "nyc1")


@pytest.mark.timeout(600)
def test_up_with_real_guests_boots_them_and_leaves_none_behind(tmp_path: Path) -> None:
    refused = up(tmp_path / "fed")  # pytest's temp dirs are 0700: QEMU's own user cannot reach them
    assert refused.returncode != 0 and "cannot enter" in refused.stderr, refused.stderr
    state = Path(tempfile.mkdtemp(prefix="cellfed-up-guests-"))
    state.chmod(0o755)
    try:
        run = up(state / "fed")
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        consoles = sorted(p.name for p in state.glob("fed/*-h1/console/*.log"))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert "federation ready" in run.stdout
    for site in SITES:  # each site's create was served by its own cell, on a real hypervisor
        assert f"{site}-c1" in run.stdout
    # QEMU itself opens each guest's serial log when it starts the domain: one per site's guest. (That
    # the guest kernel then boots is asserted by tests/integration/test_real_guest_cell.py; here the
    # workload deletes each guest within seconds, often before its kernel prints.)
    assert len(consoles) == len(SITES), consoles
    from cell.compute.libvirt_host import LibvirtHost

    with LibvirtHost(QEMU_URI) as host:
        ours = [
            d.name
            for d in host.list_domains()
            if d.metadata and d.metadata.cell in {f"{s}-c1" for s in SITES}
        ]
    assert ours == [], f"guests left running: {ours}"


def up(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localfed", "up", "--real-guests", "--sites", "2", "--per-site", "1",
         "--rtt-scale", "0.2", "--dir", str(state), "--cassandra-address-base", "127.0.15.11"],
        capture_output=True, text=True, timeout=540, stdin=subprocess.DEVNULL,
    )  # fmt: skip
