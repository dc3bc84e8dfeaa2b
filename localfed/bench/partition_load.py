"""The load of `cellfed bench partition`: a client at each site, talking to its own router, creates,
gets and deletes its own instances and reads instances of other sites, at a steady pace, recording each
request's outcome with the phase it started in (before / cut / after). `summarize` is pure: outcomes in,
success rates per side and phase out."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from cellfed.v1 import common_pb2, compute_pb2

from cellapi.client import Client
from fedlib.errors import CellfedError
from fedrpc.status import code_of

T = TypeVar("T")
# How long before the cut an instance must have been made for its index row to count as replicated to
# every DC (cross-DC visibility here is p99 ~0.15 s over the emulated WAN; `cellfed bench store`).
SETTLE_S = 2.0


@dataclass(frozen=True)
class Outcome:
    site: str  # where the client stands
    op: str
    phase: str
    ok: bool
    code: str  # gRPC status name ("OK" when ok)
    ms: float
    stale: bool = False  # answered, but from the index with the owner unreachable (UNKNOWN)


@dataclass
class Ledger:
    """What the clients know: the phase now, every outcome, and the instances each site owns."""

    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    live: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # site -> ids
    acked_before_heal: set[str] = field(default_factory=set)  # created (acknowledged) before the heal
    deleted: set[str] = field(default_factory=set)
    made_at: dict[str, float] = field(default_factory=dict)  # instance id -> when its create was acked
    cut_at: float | None = None  # monotonic time of the cut


async def drive_site(
    site: str,
    client: Client,
    ledger: Ledger,
    *,
    rate_per_s: float,
    stop: asyncio.Event,
    max_iterations: int,
    rng: random.Random,
) -> None:
    """One site's client: per iteration a create, a get of an own instance, gets of other sites', and
    every third iteration a delete of a recent instance of its own (so the population grows slowly)."""
    period = 1.0 / rate_per_s
    for n in range(max_iterations):
        if stop.is_set():
            return
        started = time.monotonic()
        await _create(site, client, ledger, n)
        own = ledger.live[site]
        if own:
            await _record(ledger, site, "get (own)", client.get(rng.choice(own)))
        await _get_other(site, client, ledger, rng)
        if n % 3 == 2 and len(own) > 2:
            victim = own.pop(-2)  # a recent one: the oldest are what the other sites read across a cut
            if await _record(ledger, site, "delete (own)", client.action("Delete", victim)):
                ledger.deleted.add(victim)
            else:
                own.append(victim)  # still there as far as anyone knows: it must be listed
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def _get_other(site: str, client: Client, ledger: Ledger, rng: random.Random) -> None:
    """A get of another site's instance: one made well before the cut (its index row has had time to
    reach this side's DC), and one of the newest, which during a cut this side may never have seen."""
    others = [i for s, ids in ledger.live.items() if s != site for i in ids]
    settled_before = (ledger.cut_at if ledger.cut_at is not None else time.monotonic()) - SETTLE_S
    known = [i for i in others if ledger.made_at.get(i, settled_before) < settled_before]
    if known:
        await _record(ledger, site, "get (other site)", client.get(rng.choice(known)))
    newest = [i for i in others if ledger.made_at.get(i, settled_before) >= settled_before][-5:]
    if newest and ledger.phase != "before":
        await _record(ledger, site, "get (other site, made later)", client.get(rng.choice(newest)))


async def _create(site: str, client: Client, ledger: Ledger, n: int) -> None:
    request = compute_pb2.CreateInstanceRequest(
        request_id=uuid.uuid4().hex, display_name=f"{site}-p{n}", flavor="m1.tiny", image="debian-12"
    )
    phase = ledger.phase
    inst = await _record(ledger, site, "create", client.create(request))
    if inst is not None:
        ledger.live[site].append(inst.instance_id)
        ledger.made_at[inst.instance_id] = time.monotonic()
        if phase != "after":
            ledger.acked_before_heal.add(inst.instance_id)


async def _record(ledger: Ledger, site: str, op: str, call: Awaitable[T]) -> T | None:
    phase, started = ledger.phase, time.perf_counter()
    try:
        result = await call
    except CellfedError as exc:
        ms = (time.perf_counter() - started) * 1000
        ledger.outcomes.append(Outcome(site, op, phase, False, code_of(exc).name, ms))
        return None
    ms = (time.perf_counter() - started) * 1000
    stale = isinstance(result, common_pb2.Instance) and result.status == common_pb2.UNKNOWN
    ledger.outcomes.append(Outcome(site, op, phase, True, "OK", ms, stale))
    return result


def summarize(outcomes: list[Outcome], side_of: Mapping[str, str]) -> dict[str, dict[str, dict[str, object]]]:
    """{phase: {"<side>: <op>": {n, ok, success_rate, stale, p50_ms, errors}}}, sides named by
    `side_of` (client site -> "cut side" or "rest")."""
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.phase, f"{side_of[o.site]}: {o.op}")].append(o)
    out: dict[str, dict[str, dict[str, object]]] = {}
    for (phase, key), group in sorted(groups.items()):
        ok = [o for o in group if o.ok]
        errors: dict[str, int] = defaultdict(int)
        for o in group:
            if not o.ok:
                errors[o.code] += 1
        ms = sorted(o.ms for o in ok)
        out.setdefault(phase, {})[key] = {
            "n": len(group),
            "ok": len(ok),
            "success_rate": round(len(ok) / len(group), 3),
            "stale": sum(1 for o in ok if o.stale),
            "p50_ms": round(ms[len(ms) // 2], 1) if ms else None,
            "errors": dict(errors),
        }
    return out
