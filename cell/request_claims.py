"""What a cell decides about an instance it built for a client's request id, from the claims of that
request its own DC shows. Pure: the sweep that reads the claims and acts is cell.claim_sweep.

Why cells settle duplicates, and how (issue 15; cellapi.router.create says how they can arise):
- Claims are keyed per region, so during a partition (or in the milliseconds before a claim replicates)
  two regions can each claim one request id and each build an instance. Every router answers a request
  with its oldest claim (replication.claims.oldest_first: created time, then region), so once the claims
  have replicated every DC agrees on the winner; the instance of any other claim is a duplicate.
- A duplicate is removed only once the winner's instance is known to exist (its index row, or this
  cell holds it): removing ours first could leave the request with no instance at all if the winning
  attempt never built one. A later retry of that request resumes the winner's build, and then ours goes.
- A DC that never received a claim (a long cut, hints lost) would never see the duplicate, and no cell
  can tell which remote DC lacks what. So each cell re-asserts, round-robin over a period, the claim each
  of its instances answers: a plain write (replicated to every DC) at the claim's own write time, so it
  never overrides a newer state of that claim (a move to another cell's id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cell.lifecycle import State
from cell.records import CellInstance
from replication import claims
from replication.model import IdempotencyRecord


@dataclass(frozen=True)
class SweepSettings:
    every_s: float = 5.0
    hot_ms: int = 10 * 60_000  # instances this young are checked on every sweep
    batch: int = 50  # older ones, this many per sweep


@dataclass(frozen=True)
class Judgement:
    reassert: bool  # the claim still names our instance (or is missing here) and we know its write time
    winner: IdempotencyRecord  # the claim every region answers the request with
    duplicate: bool  # the winner names another instance: ours goes once that one exists


def own_claim(inst: CellInstance) -> IdempotencyRecord | None:
    """The claim a build answered, as the claim table holds it; None for builds sent without one."""
    spec, ref = inst.spec, inst.spec.claim
    if ref is None or not spec.request_id:
        return None
    return IdempotencyRecord(
        ref.region, spec.tenant, spec.request_id, spec.instance_id, ref.fingerprint, ref.created_at_ms
    )


def judge(own: IdempotencyRecord, assigned_at_ms: int, seen: Sequence[IdempotencyRecord]) -> Judgement:
    """`seen`: every claim of the request this DC shows, in any order.

    Our region's row may be missing (not replicated here yet) or name another id (the claim moved to a
    spill cell after we were asked: we are the leftover of a race). Missing, it counts as ours."""
    ours = next((r for r in seen if r.region == own.region), None)
    known = list(seen) if ours is not None else [*seen, own]
    winner = claims.oldest_first(known)[0]
    # Re-assert only what we know: the claim as it stood when it named us, at that time (0: unknown).
    reassert = assigned_at_ms > 0 and (ours is None or ours.instance_id == own.instance_id)
    return Judgement(reassert, winner, duplicate=winner.instance_id != own.instance_id)


@dataclass(frozen=True)
class Due:
    check: list[CellInstance]  # read the claims and judge
    reassert: frozenset[str]  # of those, the ids whose claim is written again this sweep
    cursor: str  # where the next sweep's round-robin window starts


def due(instances: Sequence[CellInstance], now_ms: int, *, cursor: str, hot_ms: int, batch: int) -> Due:
    """What a sweep does. Every instance whose claim is still alive is visited round-robin, `batch` per
    sweep in id order (checked and re-asserted), so a cell of any size costs a bounded number of reads
    and writes per sweep and still covers them all; young ones (built within `hot_ms`, when duplicates
    arise) are also checked on every sweep, without the write, the newest `batch` of them."""
    live = sorted(
        (i for i in instances if i.record.state not in _GOING and _claim_alive(i, now_ms)),
        key=lambda i: i.spec.instance_id,
    )
    window = (
        [i for i in live if i.spec.instance_id > cursor] + [i for i in live if i.spec.instance_id <= cursor]
    )[:batch]
    in_window = {i.spec.instance_id for i in window}
    hot = [i for i in live if now_ms - i.spec.created_ms <= hot_ms and i.spec.instance_id not in in_window]
    hot = sorted(hot, key=lambda i: i.spec.created_ms, reverse=True)[:batch]  # a burst costs no more
    return Due(window + hot, frozenset(in_window), window[-1].spec.instance_id if window else "")


_GOING = frozenset({State.DELETING, State.DELETED})  # nothing left to settle


def _claim_alive(inst: CellInstance, now_ms: int) -> bool:
    ref = inst.spec.claim
    return ref is not None and bool(inst.spec.request_id) and now_ms < ref.expires_at_ms
