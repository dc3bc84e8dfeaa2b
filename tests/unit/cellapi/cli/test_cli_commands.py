"""`cellctl` commands end to end through click, against a scripted fake SDK client: options into requests,
paging, --wait outcomes, watch reconnects, and gRPC failures into one error line and an exit code."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cellfed.v1 import common_pb2, compute_pb2, federation_pb2
from click.testing import CliRunner, Result
from rich.console import Console

from cellapi.cli import session as cli_session
from cellapi.cli import wait as cli_wait
from cellapi.cli.main import cli
from fedlib.errors import CellfedError
from fedrpc.status import error_from_rpc
from tests.rpc_statuses import from_stack

IID = "par1-c1.01jz8k3m5q7r9t1v3x5z7b9d1f"


def rpc_error(code: grpc.StatusCode, details: str) -> CellfedError:
    """What the SDK raises for a status with that code and details (cellapi.client: the error tree)."""
    return error_from_rpc(from_stack(code, details), target="router r1:1")


def inst(status: int = common_pb2.BUILDING, version: int = 1, **kw: Any) -> common_pb2.Instance:
    return common_pb2.Instance(instance_id=IID, display_name="web-1", status=status, version=version, **kw)  # type: ignore[arg-type]


def event(status: int, version: int, reason: str = "", **kw: Any) -> common_pb2.InstanceEvent:
    return common_pb2.InstanceEvent(instance=inst(status, version, **kw), reason=reason)


class FakeClient:
    """Records calls; `watches` is one scripted stream per watch call (a list of events, optionally
    ending in an exception), `pages` the list replies in order, `fail` an error every call raises."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.watches: list[list[Any]] = []
        self.pages: list[compute_pb2.ListInstancesResponse] = []
        self.fail: CellfedError | None = None
        self.closed = False

    def _record(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        if self.fail is not None:
            raise self.fail

    async def probe(self) -> None:
        self._record("probe", None)

    async def create(self, request: compute_pb2.CreateInstanceRequest) -> common_pb2.Instance:
        self._record("create", request)
        return inst()

    async def get(self, instance_id: str) -> common_pb2.Instance:
        self._record("get", instance_id)
        return inst(common_pb2.ACTIVE)

    async def explain(
        self, request: federation_pb2.ExplainPlacementRequest
    ) -> federation_pb2.PlacementExplanation:
        self._record("explain", request)
        return federation_pb2.PlacementExplanation(chosen_cell="ams1-c1", summary="ams1-c1 at ams1")

    async def networks(self) -> compute_pb2.ListNetworksResponse:
        self._record("networks", None)
        return compute_pb2.ListNetworksResponse(networks=[
            compute_pb2.NetworkSummary(name="backend", sites=["ams1"]),
            compute_pb2.NetworkSummary(name="public", sites=["ams1", "par1"], default_at=["ams1", "par1"]),
        ])  # fmt: skip

    async def list(self, **kw: Any) -> compute_pb2.ListInstancesResponse:
        self._record("list", kw)
        return self.pages.pop(0)

    async def action(self, verb: str, instance_id: str) -> common_pb2.Instance:
        self._record(verb, instance_id)
        return inst(common_pb2.STOPPED)

    async def watch(
        self, instance_id: str, timeout_s: float = 600
    ) -> AsyncIterator[common_pb2.InstanceEvent]:
        self._record("watch", instance_id)
        script = self.watches.pop(0) if self.watches else []
        for item in script:
            if isinstance(item, BaseException):
                raise item
            yield item
        if not script:
            await asyncio.sleep(3600)  # a stream with nothing to say

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    made: list[tuple[Any, ...]] = []

    def factory(
        routers: list[str],
        token: str,
        *,
        timeout_s: float,
        ca: bytes | None,
        identity: tuple[bytes, bytes] | None,
    ) -> FakeClient:
        made.append((routers, token, timeout_s))
        client.ca, client.identity = ca, identity  # type: ignore[attr-defined]
        return client

    monkeypatch.setattr(cli_session, "Client", factory)
    monkeypatch.setattr(cli_wait, "RECONNECT_PAUSE_S", 0.0)
    monkeypatch.delenv("CELLFED_ROUTERS", raising=False)
    monkeypatch.delenv("CELLFED_TOKEN", raising=False)
    for name in ("CELLFED_CA", "CELLFED_CERT", "CELLFED_KEY"):
        monkeypatch.delenv(name, raising=False)
    client.made = made  # type: ignore[attr-defined]
    return client


def cellctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--router", "r1:1", "--token", "t", *args], env=env)


def test_create_passes_every_option_and_says_the_request_id_first(fake: FakeClient) -> None:
    result = cellctl(
        "-o",
        "json",
        "create",
        "web-1",
        "--flavor",
        "m1.small",
        "--image",
        "debian-12",
        "--label",
        "tier=web",
        "--near-point",
        "48.86,2.35",
        "--stay-in-region",
        "--network",
        "public",
        "--network",
        "backend",
    )
    assert result.exit_code == 0, result.output
    request = fake.calls[0][1]
    assert list(request.networks) == ["public", "backend"]
    assert (request.display_name, request.flavor, request.image) == ("web-1", "m1.small", "debian-12")
    assert dict(request.labels) == {"tier": "web"} and request.placement.stay_in_region
    assert request.placement.point.latitude == 48.86 and len(request.request_id) == 32
    assert f"request id: {request.request_id}" in result.stderr
    assert json.loads(result.stdout)["instanceId"] == IID and fake.closed


def test_create_wait_follows_events_to_active(fake: FakeClient) -> None:
    fake.watches = [[event(common_pb2.BUILDING, 1, "current state"), event(common_pb2.ACTIVE, 2, "built")]]
    result = cellctl("create", "web-1", "--flavor", "m1.small", "--image", "debian-12", "--wait")
    assert result.exit_code == 0, result.output
    assert "waiting for" in result.stderr and "ACTIVE: built" in result.stderr
    assert "ACTIVE" in result.stdout


def test_create_wait_on_a_terminal_shows_a_spinner_instead_of_lines(
    fake: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(
        cli_session, "console", lambda stderr: terminal if stderr else Console(file=io.StringIO())
    )
    fake.watches = [[event(common_pb2.BUILDING, 1, "current state"), event(common_pb2.ACTIVE, 2, "built")]]
    result = cellctl(
        "-o", "json", "create", "web-1", "--flavor", "m1.small", "--image", "debian-12", "--wait"
    )
    assert result.exit_code == 0, result.output
    assert "waiting for" not in result.stderr and f"waiting for {IID} to be ACTIVE" in screen.getvalue()
    assert json.loads(result.stdout)["status"] == "ACTIVE"


def test_create_wait_error_exits_6_with_the_fault(fake: FakeClient) -> None:
    fake.watches = [[event(common_pb2.ERROR, 2, "build failed", fault="image not found")]]
    result = cellctl("create", "web-1", "--flavor", "m1.small", "--image", "nope", "--wait")
    assert result.exit_code == 6
    assert f"error: instance {IID} is ERROR: image not found" in result.stderr


def test_create_wait_reconnects_after_a_watch_deadline_then_times_out_with_7(fake: FakeClient) -> None:
    deadline = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "watch deadline")
    fake.watches = [[event(common_pb2.BUILDING, 1), deadline], []]
    result = cellctl(
        "create", "w", "--flavor", "m1.small", "--image", "debian-12", "--wait", "--wait-timeout", "0.3"
    )
    assert result.exit_code == 7
    assert [c for c, _ in fake.calls].count("watch") == 2
    assert f"is still BUILDING after 0.3s; it may still become ACTIVE: cellctl watch {IID}" in result.stderr


def test_list_all_pages_through_and_warns_about_unreachable_cells(fake: FakeClient) -> None:
    a, b = inst(common_pb2.ACTIVE), inst(common_pb2.UNKNOWN, stale=True)
    fake.pages = [
        compute_pb2.ListInstancesResponse(instances=[a], next_page_token="p2"),
        compute_pb2.ListInstancesResponse(instances=[b], unreachable_cells=["sin1-c1"]),
    ]
    result = cellctl(
        "-o",
        "json",
        "list",
        "--all",
        "--filter",
        "status=ACTIVE",
        "--filter",
        "site=par1",
        "--page-size",
        "1",
    )
    assert result.exit_code == 0, result.output
    queries = [kw for name, kw in fake.calls if name == "list"]
    assert [q["page_token"] for q in queries] == ["", "p2"]
    assert queries[0]["filter"] == "status=ACTIVE AND site=par1" and queries[0]["page_size"] == 1
    data = json.loads(result.stdout)
    assert len(data["instances"]) == 2 and data["unreachableCells"] == ["sin1-c1"]
    assert "warning: cells did not answer in time: sin1-c1" in result.stderr


def test_list_one_page_says_how_to_get_more(fake: FakeClient) -> None:
    fake.pages = [compute_pb2.ListInstancesResponse(instances=[inst()], next_page_token="p2")]
    result = cellctl("list")
    assert result.exit_code == 0 and "more: --page-token p2 (or --all)" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "FLAVOR", "IMAGE", "SITE", "AGE"]
    assert all(line == line.rstrip() for line in lines)  # no column padding at line ends in pipes


def test_watch_skips_the_replayed_state_after_a_reconnect_and_ends_at_deleted(fake: FakeClient) -> None:
    deadline = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "")
    fake.watches = [
        [event(common_pb2.ACTIVE, 4, "current state"), deadline],
        [
            event(common_pb2.ACTIVE, 4, "current state"),
            event(common_pb2.DELETING, 5, "delete"),
            event(common_pb2.DELETED, 6, "gone"),
        ],
    ]
    result = cellctl("watch", IID)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["ACTIVE", "DELETING", "DELETED"]


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 2),
        (grpc.StatusCode.NOT_FOUND, 2),
        (grpc.StatusCode.UNAVAILABLE, 3),
        (grpc.StatusCode.PERMISSION_DENIED, 4),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 5),
        (grpc.StatusCode.INTERNAL, 1),
    ],
)
def test_grpc_failures_are_one_line_and_a_distinct_exit_code(
    fake: FakeClient, code: grpc.StatusCode, exit_code: int
) -> None:
    fake.fail = rpc_error(code, "it went\nwrong")
    result = cellctl("get", IID)
    assert result.exit_code == exit_code
    assert result.stderr.startswith(f"error: {code.name}: it went wrong")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    if code is grpc.StatusCode.UNAVAILABLE:
        assert "(routers tried: r1:1)" in result.stderr


def test_actions_call_the_sdk_verb(fake: FakeClient) -> None:
    for verb in ("delete", "start", "stop", "reboot"):
        assert cellctl(verb, IID).exit_code == 0
    assert [c for c in fake.calls if c[0] != "probe"] == [
        (v, IID) for v in ("Delete", "Start", "Stop", "Reboot")
    ]


def test_routers_and_token_from_the_environment_probe_when_there_is_a_choice(
    fake: FakeClient, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    env = {"CELLFED_ROUTERS": "a:1, b:2"}
    result = CliRunner().invoke(cli, ["--token-file", str(token), "--timeout", "3", "get", IID], env=env)
    assert result.exit_code == 0, result.output
    assert fake.made == [(["a:1", "b:2"], "from-file", 3.0)]  # type: ignore[attr-defined]
    assert fake.calls[0][0] == "probe"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "CELLFED_ROUTERS"),
        (["--router", "r:1"], {}, "CELLFED_TOKEN"),
        (["--router", "nope", "--token", "t"], {}, "not HOST:PORT"),
        (["--router", "r:1"], {"CELLFED_TOKEN": " "}, "--token-file"),
        (["--router", "r:1", "--token", "t", "--ca", "/nonexistent/ca.crt"], {}, "--ca /nonexistent/ca.crt"),
        (["--router", "r:1", "--token", "t"], {"CELLFED_CA": "/nonexistent/ca.crt"}, "--ca /nonexistent"),
    ],
)
def test_missing_or_bad_router_or_token_is_a_usage_error(
    fake: FakeClient, args: list[str], env: dict[str, str], message: str
) -> None:
    result = CliRunner().invoke(cli, [*args, "whoami"], env=env)
    assert result.exit_code == 2 and message in result.stderr and not fake.calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["create", "x", "--flavor", "f", "--image", "i", "--near-site", "a", "--near-region", "b"],
            "at most one",
        ),
        (["create", "x", "--flavor", "f", "--image", "i", "--label", "novalue"], "KEY=VALUE"),
        (["create", "x", "--flavor", "f", "--image", "i", "--near-point", "91,0"], "latitude"),
        (["drain", "par1-c1"], "--site"),
    ],
)
def test_malformed_options_are_usage_errors(fake: FakeClient, args: list[str], message: str) -> None:
    result = cellctl(*args)
    assert result.exit_code == 2 and message in result.stderr and not fake.calls


def test_ca_from_the_flag_or_the_environment_makes_the_client_talk_tls(
    fake: FakeClient, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert cellctl("--ca", str(ca), "get", IID).exit_code == 0
    assert fake.ca == ca.read_bytes()  # type: ignore[attr-defined]
    assert cellctl("get", IID, env={"CELLFED_CA": str(ca)}).exit_code == 0
    assert fake.ca == ca.read_bytes()  # type: ignore[attr-defined]
    assert cellctl("get", IID).exit_code == 0 and fake.ca is None  # type: ignore[attr-defined]
    ca.write_text("not a certificate")
    result = cellctl("--ca", str(ca), "get", IID)
    assert result.exit_code == 2 and "holds no PEM certificate" in result.stderr


def test_an_operators_certificate_goes_with_the_ca_for_an_admin_port(
    fake: FakeClient, tmp_path: Path
) -> None:
    ca, cert, key = tmp_path / "ca.crt", tmp_path / "op.chain.pem", tmp_path / "op.key"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n")
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n")
    assert cellctl("--ca", str(ca), "--cert", str(cert), "--key", str(key), "get", IID).exit_code == 0
    assert fake.identity == (cert.read_bytes(), key.read_bytes())  # type: ignore[attr-defined]
    env = {"CELLFED_CA": str(ca), "CELLFED_CERT": str(cert), "CELLFED_KEY": str(key)}
    assert cellctl("get", IID, env=env).exit_code == 0 and fake.identity is not None  # type: ignore[attr-defined]
    for args, says in (
        (["--ca", str(ca), "--cert", str(cert)], "give both --cert and --key"),
        (["--cert", str(cert), "--key", str(key)], "--cert needs --ca"),
        (["--ca", str(ca), "--cert", str(key), "--key", str(key)], "holds no PEM certificate"),
        (["--ca", str(ca), "--cert", str(cert), "--key", str(cert)], "holds no PEM private key"),
    ):
        result = cellctl(*args, "get", IID)
        assert result.exit_code == 2 and says in result.stderr, result.stderr


def test_network_list_shows_each_network_with_its_sites(fake: FakeClient) -> None:
    result = cellctl("network", "list")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["NETWORK", "SITES", "DEFAULT", "AT"],
        ["backend", "ams1"],
        ["public", "ams1,par1", "ams1,par1"],
    ]
    as_json = json.loads(cellctl("-o", "json", "network", "list").stdout)
    assert [n["name"] for n in as_json["networks"]] == ["backend", "public"]


def test_explain_passes_the_networks_to_place_by(fake: FakeClient) -> None:
    result = cellctl("explain", "--flavor", "m1.small", "--network", "backend", "--network", "public")
    assert result.exit_code == 0, result.output
    name, request = fake.calls[-1]
    assert name == "explain" and list(request.networks) == ["backend", "public"]
