"""`cellctl host list|disable|enable|evacuate`: names built from --cell/--site, the SDK call made, the
table for people and JSON for scripts, and --force refused without --powered-off."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cellfed.v1 import common_pb2, federation_pb2
from click.testing import CliRunner, Result

from cellapi.cli import session as cli_session
from cellapi.cli.main import cli

HOST = "sites/par1/cells/par1-c1/hosts/h1"


def view(name: str = HOST, lease: str = "FENCED", disabled: bool = False) -> federation_pb2.HostView:
    v = federation_pb2.HostView(name=name, host=name.rsplit("/", 1)[1], up=lease == "HELD", disabled=disabled,
                                lease_state=lease, lease_generation=42, instances=3)  # fmt: skip
    v.capacity.vcpus_total, v.capacity.memory_mb_total = 8, 16_384
    v.heartbeat_age.FromMilliseconds(31_000)
    v.evacuable_in.FromMilliseconds(0 if lease != "HELD" else 22_000)
    return v


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def hosts(self, cell_name: str) -> federation_pb2.ListHostsResponse:
        self.calls.append(("hosts", cell_name))
        return federation_pb2.ListHostsResponse(hosts=[view(lease="HELD"), view(HOST[:-2] + "h2")])

    async def set_host_disabled(self, name: str, disabled: bool, reason: str = "") -> federation_pb2.HostView:
        self.calls.append(("disabled", (name, disabled, reason)))
        return view(name, disabled=disabled)

    async def evacuate_host(
        self, name: str, *, force: bool, powered_off: bool
    ) -> federation_pb2.EvacuateHostResponse:
        self.calls.append(("evacuate", (name, force, powered_off)))
        out = federation_pb2.EvacuateHostResponse(host=view(name, lease="REVOKED"))
        out.moved.add(instance_id="par1-c1.a", to_host="h2", generation=2, status=common_pb2.BUILDING)
        out.moved.add(instance_id="par1-c1.b", generation=3, status=common_pb2.DELETED)
        out.stayed.append("par1-c1.c: cannot place flavor m1.large")
        return out

    async def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    monkeypatch.setattr(cli_session, "Client", lambda routers, token, *, timeout_s, ca, identity: client)
    return client


def cellctl(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--router", "r1:1", "--token", "t", *args])


def test_list_shows_each_host_with_its_lease_and_when_it_may_be_evacuated(fake: FakeClient) -> None:
    result = cellctl("host", "list", "par1-c1", "--site", "par1")
    assert result.exit_code == 0, result.output
    assert fake.calls == [("hosts", "sites/par1/cells/par1-c1")]
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["HOST", "UP", "STATE", "LEASE"]
    assert "HELD" in lines[1] and "in 22s if silent" in lines[1]
    assert "FENCED" in lines[2] and "now" in lines[2] and "31s" in lines[2]


def test_disable_enable_build_the_name_from_cell_and_site(fake: FakeClient) -> None:
    assert (
        cellctl("host", "disable", "h1", "--cell", "par1-c1", "--site", "par1", "--reason", "fans").exit_code
        == 0
    )
    assert cellctl("host", "enable", HOST).exit_code == 0
    assert fake.calls == [("disabled", (HOST, True, "fans")), ("disabled", (HOST, False, ""))]
    assert cellctl("host", "disable", "h1").exit_code == 2  # no cell: a usage error


def test_evacuate_table_summary_and_json(fake: FakeClient) -> None:
    result = cellctl("host", "evacuate", HOST)
    assert result.exit_code == 0, result.output
    assert fake.calls == [("evacuate", (HOST, False, False))]
    assert "par1-c1.a" in result.output and "BUILDING" in result.output
    assert "1 instances rebuilt elsewhere, 1 finished, 1 stayed; lease REVOKED" in result.output
    assert "stayed: par1-c1.c: cannot place flavor m1.large" in result.output
    as_json = json.loads(cellctl("--output", "json", "host", "evacuate", HOST).output)
    assert as_json["moved"][0]["generation"] == "2" and as_json["host"]["leaseState"] == "REVOKED"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--force"], "--force needs --powered-off"),
        (["--powered-off"], "--powered-off only goes with --force"),
    ],
)
def test_force_needs_the_operators_word(fake: FakeClient, flags: list[str], message: str) -> None:
    result = cellctl("host", "evacuate", HOST, *flags)
    assert result.exit_code == 2 and message in result.output and not fake.calls
    assert cellctl("host", "evacuate", HOST, "--force", "--powered-off").exit_code == 0
    assert fake.calls == [("evacuate", (HOST, True, True))]
