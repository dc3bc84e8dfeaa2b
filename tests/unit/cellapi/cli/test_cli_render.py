"""`cellctl`'s rendering: tables for people and JSON for scripts, from sample protobufs and a fixed clock."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from cellfed.v1 import common_pb2, compute_pb2, federation_pb2
from google.protobuf import duration_pb2
from rich.console import Console, RenderableType

from cellapi.cli.render import (
    event_line,
    fmt_ms,
    instance_detail,
    instances_table,
    merge_pages,
    status_text,
    to_json,
    to_json_line,
    unreachable_warning,
    whoami_table,
)
from cellapi.cli.render_admin import (
    cell_line,
    explain_choice,
    explain_table,
    rtt_table,
    sites_caption,
    sites_table,
    sites_warning,
    used_free,
)

NOW_MS = 1_750_000_000_000


def text(renderable: RenderableType) -> list[str]:
    """The rendering as plain lines, trailing blanks stripped, as a pipe would receive it."""
    buf = io.StringIO()
    Console(file=buf, width=250, color_system=None, highlight=False).print(renderable)
    return [line.rstrip() for line in buf.getvalue().splitlines()]


def row(lines: list[str], key: str) -> list[str]:
    """The cells (split on the column gaps) of the first line whose first cell is `key`, else of the first
    line with `key` in any cell."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines if line.strip()]
    return next((r for r in rows if r[0] == key), None) or next(r for r in rows if key in r)


def ms(value: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(value)
    return d


def instance(**kw: object) -> common_pb2.Instance:
    inst = common_pb2.Instance(
        name="instances/par1-c1.01jz8k3m5q7r9t1v3x5z7b9d1f",
        instance_id="par1-c1.01jz8k3m5q7r9t1v3x5z7b9d1f",
        tenant="acme",
        display_name="web-1",
        flavor="m1.small",
        image="debian-12",
        status=common_pb2.ACTIVE,
        site="par1",
        cell="par1-c1",
        labels={"tier": "web", "env": "prod"},
        version=3,
    )
    inst.create_time.FromMilliseconds(NOW_MS - 125_000)
    for key, value in kw.items():
        if key == "data_age_ms":
            inst.data_age.CopyFrom(ms(int(value)))  # type: ignore[call-overload]
        else:
            setattr(inst, key, value)
    return inst


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0ms"),
        (850, "850ms"),
        (4_200, "4.2s"),
        (37_000, "37s"),
        (184_000, "3m04s"),
        (7_500_000, "2h05m"),
        (273_600_000, "3d04h"),
    ],
)
def test_durations_for_people(value: int, shown: str) -> None:
    assert fmt_ms(value) == shown


def test_instances_table_marks_stale_rows_with_their_age() -> None:
    live = instance()
    stale = instance(
        instance_id="sin1-c1.x",
        display_name="db-1",
        site="sin1",
        status=common_pb2.UNKNOWN,
        stale=True,
        data_age_ms=42_000,
    )
    lines = text(instances_table([live, stale], NOW_MS))
    assert row(lines, "ID") == ["ID", "NAME", "STATUS", "FLAVOR", "IMAGE", "SITE", "AGE"]
    assert row(lines, live.instance_id) == [
        live.instance_id,
        "web-1",
        "ACTIVE",
        "m1.small",
        "debian-12",
        "par1",
        "2m05s",
    ]
    assert row(lines, "sin1-c1.x")[2] == "UNKNOWN (stale, 42s old)"


def test_user_text_is_never_read_as_markup() -> None:
    lines = text(instances_table([instance(display_name="[bold]x[/bold]")], NOW_MS))
    assert any("[bold]x[/bold]" in line for line in lines)


def test_instance_detail_shows_fault_and_labels_and_skips_empty_fields() -> None:
    lines = text(instance_detail(instance(status=common_pb2.ERROR, fault="no host can boot it"), NOW_MS))
    fields = {row(lines, f)[0]: row(lines, f)[1:] for f in ("status", "fault", "labels", "created")}
    assert fields["status"] == ["ERROR"]
    assert fields["fault"] == ["no host can boot it"]
    assert fields["labels"] == ["env=prod, tier=web"]
    assert fields["created"][0].endswith("(2m05s ago)")
    assert not any(line.startswith("host") for line in lines)  # empty for non-admin readers: not shown


def test_json_is_the_canonical_proto3_mapping_and_round_trips() -> None:
    inst = instance(stale=True, data_age_ms=1_500)
    data = json.loads(to_json(inst))
    assert data["instanceId"] == inst.instance_id and data["displayName"] == "web-1"
    assert data["status"] == "ACTIVE" and data["stale"] is True and data["dataAge"] == "1.500s"
    assert data["labels"] == {"tier": "web", "env": "prod"}
    assert "fault" not in data  # proto3 JSON leaves defaults out
    event = common_pb2.InstanceEvent(instance=inst, reason="build succeeded")
    line = to_json_line(event)
    assert "\n" not in line and json.loads(line)["reason"] == "build succeeded"


def test_merge_pages_keeps_order_and_names_each_unreachable_cell_once() -> None:
    a, b, c = (instance(instance_id=f"par1-c1.{n}") for n in "abc")
    merged = merge_pages(
        [
            compute_pb2.ListInstancesResponse(
                instances=[a, b], next_page_token="t1", unreachable_cells=["sin1-c1"]
            ),
            compute_pb2.ListInstancesResponse(instances=[c], unreachable_cells=["sin1-c1", "nyc1-c1"]),
        ]
    )
    assert [i.instance_id for i in merged.instances] == ["par1-c1.a", "par1-c1.b", "par1-c1.c"]
    assert list(merged.unreachable_cells) == ["nyc1-c1", "sin1-c1"] and not merged.next_page_token
    assert unreachable_warning(merged.unreachable_cells) == (
        "warning: cells did not answer in time: nyc1-c1, sin1-c1; "
        "their instances are shown from the index, marked stale"
    )
    assert unreachable_warning([]) is None


def test_event_line_and_whoami() -> None:
    event = common_pb2.InstanceEvent(
        instance=instance(status=common_pb2.ERROR, fault="disk gone"), reason="build failed"
    )
    event.event_time.FromMilliseconds(NOW_MS)
    assert event_line(event) == "2025-06-15T15:06:40Z  ERROR  build failed  fault: disk gone"
    assert status_text(common_pb2.Instance()) == "-"
    me = compute_pb2.WhoAmIResponse(tenant="acme", roles=["user"], router_site="par1", router_id="par1-r1")
    assert row(text(whoami_table(me)), "tenant") == ["tenant", "acme"]


def site_view(
    site: str, region: str, health: common_pb2.Health.ValueType, *, used_vcpus: int = 2
) -> federation_pb2.SiteView:
    view = federation_pb2.SiteView(name=f"sites/{site}", site=site, region=region, health=health)
    view.heartbeat_age.CopyFrom(ms(1_200))
    cell = view.cells.add(
        cell=f"{site}-c1", site=site, health=health, instances_by_status={"ACTIVE": used_vcpus}
    )
    cell.capacity.CopyFrom(
        common_pb2.Capacity(
            vcpus_total=32,
            vcpus_free=32 - used_vcpus,
            memory_mb_total=40_960,
            memory_mb_free=36_864,
            disk_gb_total=1000,
            disk_gb_free=960,
            hosts_up=1,
            instances=used_vcpus,
        )
    )
    cell.capacity_age.CopyFrom(ms(800))
    cell.rtt.CopyFrom(ms(40))
    return view


def test_sites_table_one_row_per_cell_with_capacity_ages_and_rtt() -> None:
    view = federation_pb2.ListSitesResponse(
        observed_from="par1",
        sites=[
            site_view("par1", "eu-west", common_pb2.HEALTHY),
            site_view("sin1", "ap-south", common_pb2.OFFLINE),
        ],
        unreachable_sites=["sin1"],
    )
    lines = text(sites_table(view))
    assert row(lines, "par1") == [
        "par1",
        "eu-west",
        "HEALTHY",
        "1.2s",
        "par1-c1",
        "HEALTHY",
        "2/30",
        "4.0/36.0",
        "40/960",
        "1",
        "2",
        "ACTIVE=2",
        "800ms",
        "40ms",
        "-",  # no traffic report from par1's routers: unknown, not zero
        "-",
        "-",
        "never",
    ]
    assert row(lines, "sin1")[2] == "OFFLINE"
    assert sites_caption(view) == "2 sites, observed from par1"
    assert sites_warning(view) == (
        "warning: unreachable sites: sin1; their rows show the last known data and its age"
    )


def test_site_without_cells_or_capacity_still_shows() -> None:
    bare = federation_pb2.SiteView(site="ams1", region="eu-west", health=common_pb2.HEALTH_UNKNOWN)
    fresh = site_view("lis1", "eu-west", common_pb2.HEALTHY)
    fresh.cells[0].ClearField("capacity")
    fresh.cells[0].ClearField("instances_by_status")  # it comes with the capacity summary
    fresh.cells[0].ClearField("rtt")
    lines = text(sites_table(federation_pb2.ListSitesResponse(sites=[bare, fresh])))
    assert row(lines, "ams1") == ["ams1", "eu-west", "UNKNOWN", "-", *["-"] * 13, "never"]
    assert row(lines, "lis1")[6:] == ["-", "-", "-", "-", "-", "-", "800ms", "-", "-", "-", "-", "never"]
    assert used_free(0, 0) == "-"


def candidate(ex: federation_pb2.PlacementExplanation, cell: str, rtt_ms: int, **kw: Any) -> None:
    c = ex.candidates.add(cell=cell, site=cell.split("-")[0], **kw)
    c.rtt.CopyFrom(ms(rtt_ms))


def test_explain_table_marks_the_choice_estimates_and_why_others_are_not_eligible() -> None:
    ex = federation_pb2.PlacementExplanation(chosen_cell="sin1-c1", summary="sin1: nearest with room")
    candidate(ex, "sin1-c1", 2, region="ap-south", rtt_measured=True, distance_km=0.2,
              health=common_pb2.HEALTHY, score=0.5, share=1.0, eligible=True, reason="fits")  # fmt: skip
    candidate(ex, "par1-c1", 131, region="eu-west", distance_km=10_730.4, health=common_pb2.SUSPECT,
              score=9, eligible=False, reason="missed probes")  # fmt: skip
    ex.candidates[0].capacity.CopyFrom(common_pb2.Capacity(vcpus_free=12, memory_mb_free=3072))
    lines = text(explain_table(ex))
    assert row(lines, "#")[5:8] == ["RTT", "DISTANCE", "FREE VCPUS/MEM GiB"]
    assert row(lines, "1*") == ["1*", "sin1-c1", "sin1", "ap-south", "HEALTHY", "2ms", "0 km", "12/3.0",
                                "0.5", "1.00", "yes", "fits"]  # fmt: skip
    assert row(lines, "2") == ["2", "par1-c1", "par1", "eu-west", "SUSPECT", "~131ms est.", "10,730 km", "-",
                               "9", "0.00", "no", "missed probes"]  # fmt: skip
    assert explain_choice(ex) == "chosen: sin1-c1 (sin1: nearest with room)"
    assert explain_choice(federation_pb2.PlacementExplanation()) == "chosen: none (nothing fits)"


def test_rtt_matrix_shows_unknowns_and_silent_routers() -> None:
    m = federation_pb2.RttMatrix(sites=["nyc1", "par1", "sin1"])
    m.rows.add(from_site="par1", rtt_ms=[40.2, 0.4, -1]).data_age.CopyFrom(ms(3_000))
    lines = text(rtt_table(m))
    assert row(lines, "FROM \\ TO") == ["FROM \\ TO", "nyc1", "par1", "sin1", "DATA AGE"]
    assert row(lines, "par1") == ["par1", "40ms", "0ms", "?", "3.0s"]
    m.rows.add(from_site="nyc1", rtt_ms=[0.3, 39.0, 95.0])  # no age: the answering router's own row
    lines = text(rtt_table(m))
    assert row(lines, "nyc1") == ["nyc1", "0ms", "39ms", "95ms", "live"]
    assert row(lines, "sin1") == ["sin1", "-", "-", "-", "no report"]


def test_cell_line() -> None:
    cell = federation_pb2.CellView(name="sites/par1/cells/par1-c1", drained=True, health=common_pb2.DRAINED)
    assert cell_line(cell) == "sites/par1/cells/par1-c1: drained, health DRAINED"


def test_instance_detail_shows_each_nic_with_its_addresses() -> None:
    inst = instance()
    inst.addresses.add(network="public", mac="9a:ca:c1:00:00:04", ipv4="203.0.113.10", ipv6="2001:db8:1::1")
    inst.addresses.add(network="v6only", mac="9a:ca:c1:00:00:05", ipv6="2001:db8:2::1")
    lines = text(instance_detail(inst, NOW_MS))
    assert [line.split() for line in lines if line.startswith("nic")] == [
        ["nic", "0", "(public)", "203.0.113.10", "2001:db8:1::1", "9a:ca:c1:00:00:04"],
        ["nic", "1", "(v6only)", "2001:db8:2::1", "9a:ca:c1:00:00:05"],
    ]
    assert json.loads(to_json(inst))["addresses"][0] == {
        "network": "public",
        "mac": "9a:ca:c1:00:00:04",
        "ipv4": "203.0.113.10",
        "ipv6": "2001:db8:1::1",
    }
