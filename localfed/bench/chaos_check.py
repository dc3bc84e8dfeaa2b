"""The chaos run's invariant checker: a pure function of what clients were told (the ledger), what the
nemesis did (the faults) and what every source of truth holds (the snapshot). DESIGN principle 7, as
counts with the instance ids behind them:

- lost: an acknowledged create, never deleted, with no live record in any cell;
- duplicate: one (tenant, request id) answered with, or recorded as, two live instances; or one instance
  id live in two cells;
- orphaned: a live record with no index row (in some DC) or no listing row (at some router), an index or
  listing row with no live record, or a host whose domain count differs from its live records';
- stuck: BUILDING or DELETING longer than `stuck_after_s`;
- undeleted: an acknowledged delete whose instance is live again.

Plus the success ratio per site, split by whether that site was under a fault when the operation
started, and per fault how long its site kept failing (time to recover)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from localfed.bench.chaos_model import GONE, WITH_DOMAIN, Fault, Ledger, Op, Record, Snapshot

RECOVERY_HORIZON_S = 30.0  # failures this long after a repair are still counted against that fault


def live_records(snapshot: Snapshot) -> dict[str, list[Record]]:
    """instance id -> its live records (normally one) across every cell."""
    out: dict[str, list[Record]] = defaultdict(list)
    for records in snapshot.records.values():
        for r in records.values():
            if r.status != GONE:
                out[r.instance_id].append(r)
    return dict(out)


def check(ledger: Ledger, snapshot: Snapshot, *, stuck_after_s: float = 60.0) -> dict[str, Any]:
    """The defects, each as a sorted list of human-readable findings (empty means the invariant held)."""
    live = live_records(snapshot)
    return {
        "lost": _lost(ledger, live),
        "duplicate": _duplicates(ledger, live),
        "orphaned": _orphans(snapshot, live),
        "stuck": _stuck(snapshot, live, stuck_after_s),
        "undeleted": sorted(
            f"{iid}: delete acknowledged, still {live[iid][0].status}"
            for iid in ledger.deleted
            if iid in live
        ),
        "unreadable": sorted(snapshot.unreadable),
    }


def _lost(ledger: Ledger, live: Mapping[str, list[Record]]) -> list[str]:
    return sorted(
        f"{a.instance_id}: created at {a.site} (request {a.request_id}), no live record in any cell"
        for a in ledger.acks
        if a.instance_id not in ledger.deleted and a.instance_id not in live
    )


def _duplicates(ledger: Ledger, live: Mapping[str, list[Record]]) -> list[str]:
    found = []
    for iid, records in live.items():
        if len(records) > 1:
            found.append(
                f"{iid}: live in {len(records)} cells ({', '.join(sorted(r.cell for r in records))})"
            )
    by_request: dict[tuple[str, str], set[str]] = defaultdict(set)
    for iid, records in live.items():
        for r in records:
            if r.request_id:
                by_request[(r.tenant, r.request_id)].add(iid)
    for key, answered in ledger.answers.items():
        by_request[key] |= {i for i in answered if i in live}
    for (tenant, request_id), ids in by_request.items():
        if len(ids) > 1:
            found.append(f"request {tenant}/{request_id}: {len(ids)} live instances {sorted(ids)}")
    return sorted(found)


def _orphans(snapshot: Snapshot, live: Mapping[str, list[Record]]) -> list[str]:
    found = []
    for dc, rows in snapshot.index.items():
        for iid in live:
            if iid not in rows:
                found.append(f"{iid}: live record, no index row in {dc}")
        for iid, row in rows.items():
            if row.status != GONE and iid not in live:
                found.append(f"{iid}: index row in {dc} ({row.status}), no live record")
    for site, listed in snapshot.listings.items():
        for iid in live:
            if iid not in listed:
                found.append(f"{iid}: live record, not listed by the router at {site}")
        for iid, status in listed.items():
            if status != GONE and iid not in live:
                found.append(f"{iid}: listed by the router at {site} ({status}), no live record")
    expected: Counter[str] = Counter(
        r.host_id for records in live.values() for r in records if r.host_id and r.status in WITH_DOMAIN
    )
    for host in sorted(set(snapshot.domains) | set(expected)):
        if host not in snapshot.domains:
            continue  # its agent could not be read: named in `unreadable`, not compared
        have, want = snapshot.domains[host], expected.get(host, 0)
        if have > want:
            found.append(f"{host}: {have} domains, {want} live records placed there ({have - want} orphaned)")
        elif have < want:
            found.append(
                f"{host}: {have} domains, {want} live records placed there ({want - have} without a domain)"
            )
    return sorted(found)


def _stuck(snapshot: Snapshot, live: Mapping[str, list[Record]], stuck_after_s: float) -> list[str]:
    bound_ms = snapshot.now_ms - int(stuck_after_s * 1000)
    return sorted(
        f"{r.instance_id}: {r.status} in {r.cell} for {(snapshot.now_ms - r.updated_ms) / 1000:.0f}s"
        for records in live.values()
        for r in records
        if r.status in ("BUILDING", "DELETING") and r.updated_ms < bound_ms
    )


def under_fault(site: str, at: float, faults: Iterable[Fault]) -> bool:
    return any(f.site == site and f.start <= at <= f.end for f in faults)


def success_by_site(ops: Sequence[Op], faults: Sequence[Fault]) -> dict[str, dict[str, dict[str, Any]]]:
    """site -> {"under fault" | "no fault": {n, ok, ratio, errors}}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for op in ops:
        side = "under fault" if under_fault(op.site, op.started, faults) else "no fault"
        cell = out.setdefault(op.site, {}).setdefault(side, {"n": 0, "ok": 0, "errors": Counter()})
        cell["n"] += 1
        cell["ok"] += op.ok
        if not op.ok:
            cell["errors"][op.error or "?"] += 1
    for sides in out.values():
        for cell in sides.values():
            cell["ratio"] = round(cell["ok"] / cell["n"], 4) if cell["n"] else None
            cell["errors"] = dict(cell["errors"].most_common())
    return out


def recovery(ops: Sequence[Op], faults: Sequence[Fault]) -> dict[str, dict[str, Any]]:
    """Per fault kind: how long after each fault began its site went on failing (the end of the last
    failed operation at that site before the repair plus RECOVERY_HORIZON_S; 0 when nothing failed)."""
    by_kind: dict[str, list[float]] = defaultdict(list)
    for f in faults:
        failed = [
            op.ended
            for op in ops
            if op.site == f.site and not op.ok and f.start <= op.started <= f.end + RECOVERY_HORIZON_S
        ]
        role = f.target.partition(":")[0] if ":" in f.target else "site"
        by_kind[f"{f.kind} {role}"].append(max(failed) - f.start if failed else 0.0)
    return {
        kind: {
            "faults": len(times),
            "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2),
        }
        for kind, times in sorted(by_kind.items())
    }


def summary(
    ledger: Ledger, faults: Sequence[Fault], snapshot: Snapshot, stuck_after_s: float
) -> dict[str, Any]:
    """The whole report as data (the JSON file; the table prints it)."""
    defects = check(ledger, snapshot, stuck_after_s=stuck_after_s)
    ops_by_kind = Counter(op.kind for op in ledger.ops)
    return {
        "operations": dict(sorted(ops_by_kind.items())),
        "acknowledged_creates": len(ledger.acks),
        "acknowledged_deletes": len(ledger.deleted),
        "checked": {  # so that a clean result over empty sources cannot pass unnoticed
            "live_instances": len(live_records(snapshot)),
            "domains": sum(snapshot.domains.values()),
            "index_dcs": len(snapshot.index),
            "listings": len(snapshot.listings),
            "cells": len(snapshot.records),
        },
        "counts": {k: len(v) for k, v in defects.items()},
        "defects": defects,
        "success": success_by_site(ledger.ops, faults),
        "recovery": recovery(ledger.ops, faults),
        "faults": [vars(f) for f in faults],
    }
