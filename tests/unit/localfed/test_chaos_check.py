"""The chaos checker, over hand-made snapshots: a consistent federation shows no defect, and each kind of
defect (lost, duplicate, orphaned, stuck, undeleted) planted on its own is found and named."""

from __future__ import annotations

from dataclasses import replace

import pytest

from localfed.bench.chaos_check import check, recovery, success_by_site, summary
from localfed.bench.chaos_model import Ack, Fault, IndexRow, Ledger, Op, Record, Snapshot

NOW_MS = 1_000_000
DCS = ("eu-west", "us-east")
ROUTERS = ("par1", "nyc1")


def rec(iid: str, cell: str = "par1-c1", status: str = "ACTIVE", host: str | None = "par1-h1",
        request_id: str | None = None, age_s: float = 1.0) -> Record:  # fmt: skip
    return Record(iid, cell, "acme", request_id or f"r-{iid}", status, host, NOW_MS - int(age_s * 1000))


def consistent(records: list[Record], domains: dict[str, int] | None = None) -> Snapshot:
    """Every source agrees with `records`."""
    live = [r for r in records if r.status != "DELETED"]
    by_cell: dict[str, dict[str, Record]] = {}
    for r in records:
        by_cell.setdefault(r.cell, {})[r.instance_id] = r
    index = {
        dc: {r.instance_id: IndexRow(r.instance_id, r.cell, r.tenant, r.status) for r in live} for dc in DCS
    }
    listings = {site: {r.instance_id: r.status for r in live} for site in ROUTERS}
    if domains is None:
        domains = {}
        for r in live:
            if r.host_id and r.status in ("ACTIVE", "STOPPED", "REBOOTING"):
                domains[r.host_id] = domains.get(r.host_id, 0) + 1
    return Snapshot(NOW_MS, listings, index, by_cell, domains)


def ledger_of(*acks: str, deleted: tuple[str, ...] = ()) -> Ledger:
    return Ledger(
        acks=tuple(Ack(i, "acme", f"r-{i}", "par1", 1.0) for i in acks),
        deleted=dict.fromkeys(deleted, 2.0),
        answers={("acme", f"r-{i}"): frozenset({i}) for i in acks},
    )


def defects(ledger: Ledger, snap: Snapshot) -> dict[str, int]:
    return {k: len(v) for k, v in check(ledger, snap, stuck_after_s=60).items()}


CLEAN = {"lost": 0, "duplicate": 0, "orphaned": 0, "stuck": 0, "undeleted": 0, "unreadable": 0}


def test_a_consistent_federation_has_no_defect() -> None:
    records = [
        rec("a"),
        rec("b", status="STOPPED"),
        rec("c", status="DELETED"),
        rec("d", status="ERROR", host=None),
    ]
    assert defects(ledger_of("a", "b", "c", "d", deleted=("c",)), consistent(records)) == CLEAN


def test_an_acknowledged_create_with_no_record_is_lost() -> None:
    snap = consistent([rec("a")])
    found = check(ledger_of("a", "gone"), snap)
    assert found["lost"] == ["gone: created at par1 (request r-gone), no live record in any cell"]
    assert defects(ledger_of("a", "gone"), snap) == {**CLEAN, "lost": 1}


def test_a_deleted_record_counts_as_lost_unless_the_delete_was_acknowledged() -> None:
    snap = consistent([rec("a", status="DELETED")])
    assert defects(ledger_of("a"), snap)["lost"] == 1
    assert defects(ledger_of("a", deleted=("a",)), snap) == CLEAN


def test_one_request_id_with_two_live_instances_is_a_duplicate() -> None:
    snap = consistent(
        [rec("a", request_id="r-a"), rec("a2", cell="nyc1-c1", host="nyc1-h1", request_id="r-a")]
    )
    found = check(ledger_of("a"), snap)
    assert found["duplicate"] == ["request acme/r-a: 2 live instances ['a', 'a2']"]
    assert defects(ledger_of("a"), snap) == {**CLEAN, "duplicate": 1}


def test_two_answers_for_one_request_id_are_a_duplicate_even_without_the_request_in_the_records() -> None:
    snap = consistent([rec("a", request_id=""), rec("b", request_id="")])
    ledger = replace(ledger_of("a", "b"), answers={("acme", "r-x"): frozenset({"a", "b"})})
    assert defects(ledger, snap)["duplicate"] == 1


def test_one_instance_id_live_in_two_cells_is_a_duplicate() -> None:
    snap = consistent([rec("a")])
    twin = rec("a", cell="nyc1-c1", host=None, status="ERROR")
    snap = replace(snap, records={**snap.records, "nyc1-c1": {"a": twin}})
    found = check(ledger_of("a"), snap)["duplicate"]
    assert "a: live in 2 cells (nyc1-c1, par1-c1)" in found


def test_a_record_missing_from_one_dc_index_is_orphaned() -> None:
    snap = consistent([rec("a"), rec("b")])
    snap = replace(snap, index={**snap.index, "us-east": {"a": snap.index["us-east"]["a"]}})
    assert check(ledger_of("a", "b"), snap)["orphaned"] == ["b: live record, no index row in us-east"]


def test_an_index_row_or_listing_row_with_no_record_is_orphaned() -> None:
    snap = consistent([rec("a")])
    ghost = IndexRow("ghost", "par1-c1", "acme", "ACTIVE")
    snap = replace(
        snap,
        index={dc: {**rows, "ghost": ghost} for dc, rows in snap.index.items()},
        listings={**snap.listings, "nyc1": {**snap.listings["nyc1"], "ghost2": "ACTIVE"}},
    )
    found = check(ledger_of("a"), snap)["orphaned"]
    assert "ghost: index row in eu-west (ACTIVE), no live record" in found
    assert "ghost2: listed by the router at nyc1 (ACTIVE), no live record" in found
    assert len(found) == 3


def test_a_record_missing_from_a_listing_is_orphaned() -> None:
    snap = consistent([rec("a")])
    snap = replace(snap, listings={**snap.listings, "par1": {}})
    assert check(ledger_of("a"), snap)["orphaned"] == ["a: live record, not listed by the router at par1"]


def test_domains_without_a_record_or_records_without_a_domain_are_orphaned() -> None:
    records = [rec("a"), rec("b", host="par1-h2")]
    extra = consistent(records, domains={"par1-h1": 2, "par1-h2": 1})
    missing = consistent(records, domains={"par1-h1": 1, "par1-h2": 0})
    assert check(ledger_of("a", "b"), extra)["orphaned"] == [
        "par1-h1: 2 domains, 1 live records placed there (1 orphaned)"
    ]
    assert check(ledger_of("a", "b"), missing)["orphaned"] == [
        "par1-h2: 0 domains, 1 live records placed there (1 without a domain)"
    ]
    unread = consistent(records, domains={"par1-h1": 1})  # par1-h2's agent not read: not compared
    assert defects(ledger_of("a", "b"), unread) == CLEAN


@pytest.mark.parametrize("status", ["BUILDING", "DELETING"])
def test_building_or_deleting_past_the_bound_is_stuck(status: str) -> None:
    young, old = rec("a", status=status, age_s=30), rec("b", status=status, age_s=90)
    found = check(ledger_of("a", "b"), consistent([young, old]), stuck_after_s=60)["stuck"]
    assert found == [f"b: {status} in par1-c1 for 90s"]


def test_an_acknowledged_delete_whose_instance_lives_is_undeleted() -> None:
    found = check(ledger_of("a", deleted=("a",)), consistent([rec("a")]))
    assert found["undeleted"] == ["a: delete acknowledged, still ACTIVE"] and found["lost"] == []


def test_success_is_split_by_whether_the_site_was_under_a_fault() -> None:
    faults = [Fault("kill", "cell:par1", "par1", 10.0, 20.0)]
    ops = [
        Op("par1", "get", 5.0, 5.1, True),
        Op("par1", "get", 12.0, 12.1, False, "UNAVAILABLE"),
        Op("par1", "create", 15.0, 16.0, True),
        Op("nyc1", "get", 12.0, 12.1, True),
    ]
    got = success_by_site(ops, faults)
    assert got["par1"]["under fault"] == {"n": 2, "ok": 1, "ratio": 0.5, "errors": {"UNAVAILABLE": 1}}
    assert got["par1"]["no fault"]["ratio"] == 1.0
    assert "under fault" not in got["nyc1"]


def test_recovery_is_how_long_the_site_went_on_failing() -> None:
    faults = [
        Fault("kill", "cell:par1", "par1", 10.0, 20.0),
        Fault("pause", "router:nyc1", "nyc1", 30.0, 35.0),
    ]
    ops = [
        Op("par1", "get", 12.0, 13.0, False, "UNAVAILABLE"),
        Op("par1", "get", 22.0, 24.5, False, "UNAVAILABLE"),  # after the restart, within the horizon
        Op("par1", "get", 80.0, 80.5, False, "UNAVAILABLE"),  # far later: not this fault's
        Op("nyc1", "get", 31.0, 31.1, True),
    ]
    got = recovery(ops, faults)
    assert got["kill cell"] == {"faults": 1, "median_s": 14.5, "max_s": 14.5}
    assert got["pause router"] == {"faults": 1, "median_s": 0.0, "max_s": 0.0}


def test_the_summary_counts_every_defect_kind() -> None:
    out = summary(ledger_of("a", "gone"), [], consistent([rec("a")]), stuck_after_s=60)
    assert out["counts"] == {**CLEAN, "lost": 1} and out["acknowledged_creates"] == 2
    assert out["checked"] == {"live_instances": 1, "domains": 1, "index_dcs": 2, "listings": 2, "cells": 1}
