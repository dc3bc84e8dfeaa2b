"""`cellctl top` and the site-level tables: frames from scripted Federation API replies, a router that
hangs or fails never blocks the refresh, unreachable sites shown with the age of what is known, and
`cellctl sites` carrying instances by status and traffic."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc
import pytest
from cellfed.v1 import common_pb2, federation_pb2
from click.testing import CliRunner, Result

from cellapi.cli import session as cli_session
from cellapi.cli.main import cli
from cellapi.cli.render_top import Frame, site_totals, top_frame, top_table
from fedrpc.status import error_from_rpc
from tests.rpc_statuses import from_stack
from tests.unit.cellapi.cli.test_cli_render import ms, row, text

NOW = 1_790_000_000_000


def site(name: str, health: int, *, rps: float | None = 4.0, age_ms: int = 1_500) -> federation_pb2.SiteView:
    view = federation_pb2.SiteView(name=f"sites/{name}", site=name, region="eu-west", health=health)  # type: ignore[arg-type]
    view.heartbeat_age.CopyFrom(ms(900))
    for n, by in ((1, {"ACTIVE": 3, "BUILDING": 1}), (2, {"ACTIVE": 2, "ERROR": 1})):
        cell = view.cells.add(cell=f"{name}-c{n}", site=name, health=health, instances_by_status=by)  # type: ignore[arg-type]
        cell.capacity.CopyFrom(
            common_pb2.Capacity(
                vcpus_total=16, vcpus_free=10, memory_mb_total=32_768, memory_mb_free=16_384,
                hosts_up=1, instances=sum(by.values()),
            )
        )  # fmt: skip
        cell.capacity_age.CopyFrom(ms(age_ms * n))
    if rps is not None:
        view.traffic.requests_per_second = rps
        view.traffic.errors_per_second = rps / 8
        view.traffic.p99_latency.CopyFrom(ms(42))
        view.traffic.window.CopyFrom(ms(30_000))
        view.traffic.data_age.CopyFrom(ms(age_ms))
    return view


def federation(**kw: Any) -> federation_pb2.ListSitesResponse:
    sin = site("sin1", common_pb2.OFFLINE, rps=2.0, age_ms=95_000)
    sin.ClearField("heartbeat_age")  # its router is gone: only its last report is left
    return federation_pb2.ListSitesResponse(
        observed_from="par1",
        sites=[site("par1", common_pb2.HEALTHY), site("nyc1", common_pb2.HEALTHY, rps=None), sin],
        unreachable_sites=["sin1"],
        **kw,
    )


def test_site_totals_add_up_the_cells() -> None:
    t = site_totals(site("par1", common_pb2.HEALTHY))
    assert (t.vcpus_total, t.vcpus_free, t.instances) == (32, 20, 7)
    assert dict(t.by_status) == {"ACTIVE": 5, "BUILDING": 1, "ERROR": 1} and t.capacity_age_ms == 3_000


def test_top_table_one_line_per_site_unreachable_ones_aged_not_hidden() -> None:
    lines = text(top_table(federation()))
    assert row(lines, "par1") == [
        "par1", "HEALTHY", "900ms", "3.0s", "12/20", "32.0/32.0", "7", "ACTIVE=5,BUILDING=1,ERROR=1",
        "4.0", "0.5", "42ms", "1.5s ago",
    ]  # fmt: skip
    assert row(lines, "nyc1")[8:] == ["-", "-", "-", "never"]  # no report: unknown, not zero
    sin = row(lines, "sin1")
    assert sin[1:3] == ["OFFLINE (unreachable)", "none live"] and sin[-1] == "1m35s ago" and sin[8] == "2.0"


def test_a_failed_refresh_keeps_the_last_view_and_says_how_old_it_is() -> None:
    frame = Frame(federation(), NOW - 12_000, NOW, 2.0, "DEADLINE_EXCEEDED: no answer")
    lines = text(top_frame(frame))
    assert lines[0].startswith("cellctl top: 3 sites, 2 healthy, observed from par1 at ")
    assert "unreachable: sin1 (last known data, aged)" in lines[1]
    assert "did not answer" in lines[2] and "showing the view from 12s ago" in lines[2]
    assert row(lines, "par1")[0] == "par1"
    assert text(top_frame(Frame(None, None, NOW, 2.0, "UNAVAILABLE: down")))[0].startswith(
        "cellctl top: no view"
    )


class Sites:
    """A fake SDK client whose sites() answers from a script: a view, an exception, or "hang"."""

    def __init__(self, script: list[Any]) -> None:
        self.script, self.calls = script, 0

    async def probe(self) -> None:
        pass

    async def sites(self) -> federation_pb2.ListSitesResponse:
        self.calls += 1
        item = self.script.pop(0) if self.script else federation()
        if item == "hang":
            await asyncio.sleep(3600)
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    async def close(self) -> None:
        pass


def top(monkeypatch: pytest.MonkeyPatch, script: list[Any], *args: str) -> tuple[Result, Sites]:
    fake = Sites(script)
    monkeypatch.setattr(cli_session, "Client", lambda routers, token, *, timeout_s, ca, identity: fake)
    result = CliRunner().invoke(cli, ["--router", "r1:1", "--token", "t", *args])
    return result, fake


def test_a_hanging_router_never_blocks_the_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    down = from_stack(grpc.StatusCode.UNAVAILABLE, "router down")
    unavailable = error_from_rpc(down, target="router r1:1")  # what the SDK raises (cellapi.client)
    started = time.monotonic()
    result, fake = top(
        monkeypatch, [federation(), "hang", unavailable, federation()], "top", "--interval", "0.2",
        "--iterations", "4",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert fake.calls == 4 and elapsed < 3.0  # the hang cost one 0.5 s deadline, not an hour
    frames = result.stdout.split("cellctl top: ")[1:]
    assert len(frames) == 4
    assert "no answer within 0.5s" in frames[1] and "showing the view from" in frames[1]
    assert "UNAVAILABLE: router down" in frames[2] and "did not answer" not in frames[3]
    assert all("sin1" in f and "OFFLINE (unreachable)" in f for f in frames)


def test_once_as_json_and_a_failure_sets_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = top(monkeypatch, [], "-o", "json", "top", "--once")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["sites"][0]["traffic"]["requestsPerSecond"] == 4.0
    assert view["sites"][0]["cells"][0]["instancesByStatus"] == {"ACTIVE": 3, "BUILDING": 1}
    failed, _ = top(monkeypatch, ["hang"], "top", "--once", "--interval", "0.2")
    assert failed.exit_code == 3 and "no answer within 0.5s" in failed.stdout
    clash, _ = top(monkeypatch, [], "top", "--once", "--iterations", "3")
    assert clash.exit_code == 2 and "disagree" in clash.output


def test_sites_shows_instances_by_status_and_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = top(monkeypatch, [], "sites")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert row(lines, "par1-c2")[10:] == [
        "3",
        "ACTIVE=2,ERROR=1",
        "3.0s",
        "-",
        "4.0",
        "0.5",
        "42ms",
        "1.5s ago",
    ]
    assert row(lines, "nyc1-c1")[-4:] == ["-", "-", "-", "never"]
    assert row(lines, "sin1-c1")[-4:] == ["2.0", "0.2", "42ms", "1m35s ago"]  # the dead site's last report
    assert "warning: unreachable sites: sin1" in result.stderr


def test_sub_millisecond_latencies_keep_a_decimal() -> None:
    from cellapi.cli.render_admin import fmt_latency
    from cellapi.router.status_page import latency_text

    assert (fmt_latency(400), fmt_latency(9_950), fmt_latency(42_000)) == ("0.4ms", "9.9ms", "42ms")
    assert (latency_text(400), latency_text(42_000)) == ("0.4 ms", "42 ms")
