"""`cell serve --networks-file`: a valid declaration reaches the controller's settings; a bad one stops
the process at start with a message naming the file and the field, never at a guest's build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cell import main as cell_main
from fedlib.errors import FailedPrecondition

IPV4 = {"cidr": "203.0.113.0/26", "gateway": "203.0.113.1", "pool": ["203.0.113.10", "203.0.113.62"]}
IPV6 = {"prefix": "2001:db8:1::/64", "gateway": "2001:db8:1::1"}
PUBLIC = {"name": "public", "bridge": "br-public", "default": True, "ipv4": IPV4, "ipv6": IPV6,
          "dns": ["192.0.2.53"]}  # fmt: skip


def _process(networks_file: Path | None) -> cell_main.CellProcess:
    return cell_main.cell_process(
        cell_id="par1-c1", site_id="par1", region="eu-west", listen="127.0.0.1:0", advertise=None,
        metrics_listen="127.0.0.1:0", contact_points="127.0.0.1", local_dc="eu-west",
        global_keyspace="cellfed_global", policy="spread", host_grace_s=3.0, build_timeout_s=120.0,
        networks_file=networks_file,
    )  # fmt: skip


def test_a_declared_network_reaches_the_core_settings(tmp_path: Path) -> None:
    path = tmp_path / "networks.json"
    path.write_text(json.dumps([PUBLIC]))
    core = _process(path).settings.core()
    assert [(n.name, n.bridge, str(n.ipv4.cidr) if n.ipv4 else None) for n in core.networks] == [
        ("public", "br-public", "203.0.113.0/26")
    ]
    assert _process(None).settings.core().networks == ()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (json.dumps([{**PUBLIC, "ipv4": {**IPV4, "gateway": "10.0.0.1"}}]).encode(), "gateway"),
        (json.dumps([PUBLIC, {**PUBLIC, "bridge": "br-two"}]).encode(), "networks[1].name"),
        (json.dumps([]).encode(), "non-empty list"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_a_bad_declaration_stops_the_start_naming_the_problem(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "networks.json"
    path.write_bytes(content)
    result = CliRunner().invoke(
        cell_main.cell_cli,
        ["serve", "--cell-id", "par1-c1", "--site", "par1", "--region", "eu-west", "--cassandra", "127.0.0.1",
         "--local-dc", "eu-west", "--networks-file", str(path)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--networks-file" in result.output and says in result.output
    assert len(result.output) < 2_000  # a huge file is not echoed back


def test_a_file_over_a_mebibyte_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "networks.json"
    path.write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(Exception, match="larger than 1 MiB"):
        _process(path)


def test_a_start_the_cell_refuses_ends_with_its_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(process: cell_main.CellProcess) -> None:
        raise FailedPrecondition("instance par1-c1.x has a NIC on network gone, no longer declared")

    monkeypatch.setattr(cell_main, "serve", refused)
    result = CliRunner().invoke(
        cell_main.cell_cli,
        ["serve", "--cell-id", "par1-c1", "--site", "par1", "--region", "eu-west", "--cassandra", "127.0.0.1",
         "--local-dc", "eu-west"],
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: instance par1-c1.x has a NIC on network gone, no longer declared" in result.output
