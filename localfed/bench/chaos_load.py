"""The chaos run's load: a client at every site, through the SDK (nearest router first, failing over to
the others in order), drives a bounded mix of creates, gets, lists, stops, starts and deletes of its
own instances and records what it was told. Creates and deletes are retried as a careful client retries
them: a create again with the SAME request id (so a retry can never make a second instance), a delete
until it is acknowledged or the instance is reported gone."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cellfed.v1 import common_pb2, compute_pb2

from cellapi.client import Client
from fedlib.errors import CellfedError
from fedrpc.status import code_of
from localfed.bench.chaos_model import Ack, Ledger, Op

T = TypeVar("T")
TENANT = "acme"
# Worth another attempt: the federation could not answer (or said it was busy), not "no".
RETRYABLE = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED", "INTERNAL", "UNKNOWN"}
)
RETRY_BACKOFF_S = (0.5, 1.0, 2.0)  # so at most 4 attempts
WEIGHTS = {"create": 3, "get": 3, "list": 1, "stop": 1, "start": 1, "delete": 2}


@dataclass
class Recorder:
    """What every site's client was told, in the order it happened; `clock` is the run's clock."""

    clock: Callable[[], float]
    ops: list[Op] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    deleted: dict[str, float] = field(default_factory=dict)
    answers: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    pools: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # site -> its live ids

    def ledger(self) -> Ledger:
        return Ledger(
            acks=tuple(self.acks),
            deleted=dict(self.deleted),
            answers={k: frozenset(v) for k, v in self.answers.items()},
            ops=tuple(self.ops),
        )


async def _attempt(call: Awaitable[T]) -> tuple[T | None, str]:
    try:
        return await call, ""
    except CellfedError as exc:
        return None, code_of(exc).name


async def create(site: str, client: Client, rec: Recorder) -> None:
    request_id = uuid.uuid4().hex
    started, error, attempts = rec.clock(), "", 0
    for attempts, backoff in enumerate((*RETRY_BACKOFF_S, None), start=1):
        request = compute_pb2.CreateInstanceRequest(
            request_id=request_id, display_name=f"chaos-{site}", flavor="m1.tiny", image="debian-12"
        )
        inst, error = await _attempt(client.create(request))
        if inst is not None:
            rec.answers[(TENANT, request_id)].add(inst.instance_id)
            rec.acks.append(Ack(inst.instance_id, TENANT, request_id, site, rec.clock()))
            rec.pools[site].append(inst.instance_id)
            rec.ops.append(
                Op(site, "create", started, rec.clock(), True, "", inst.instance_id, request_id, attempts)
            )
            return
        if error not in RETRYABLE or backoff is None:
            break
        await asyncio.sleep(backoff)
    rec.ops.append(Op(site, "create", started, rec.clock(), False, error, "", request_id, attempts))


async def delete(site: str, client: Client, rec: Recorder, iid: str) -> None:
    started, error, attempts = rec.clock(), "", 0
    for attempts, backoff in enumerate((*RETRY_BACKOFF_S, None), start=1):
        inst, error = await _attempt(client.action("Delete", iid))
        # NOT_FOUND after an attempt whose answer was lost: that attempt did it.
        if inst is not None or (error == "NOT_FOUND" and attempts > 1):
            rec.deleted[iid] = rec.clock()
            rec.pools[site].remove(iid)
            rec.ops.append(Op(site, "delete", started, rec.clock(), True, "", iid, "", attempts))
            return
        if error not in RETRYABLE or backoff is None:
            break
        await asyncio.sleep(backoff)
    if (
        error == "NOT_FOUND"
    ):  # an instance this client was told exists, and never deleted: the checker decides
        rec.pools[site].remove(iid)
    rec.ops.append(Op(site, "delete", started, rec.clock(), False, error, iid, "", attempts))


async def once(site: str, client: Client, rec: Recorder, kind: str, iid: str) -> None:
    """A get, list, stop or start: one attempt (the SDK still fails over between routers). A stop or
    start refused by the instance's state (FAILED_PRECONDITION) is an answer, so it counts as served."""
    started = rec.clock()
    if kind == "get":
        call: Awaitable[object] = client.get(iid)
    elif kind == "list":
        call = client.list(page_size=50)
    else:
        call = client.action(kind.capitalize(), iid)
    result, error = await _attempt(call)
    ok = result is not None or (kind in ("stop", "start") and error == "FAILED_PRECONDITION")
    if isinstance(result, common_pb2.Instance) and result.stale:
        error = "STALE"  # answered from the index, the owner unreachable: served, with its age
    rec.ops.append(Op(site, kind, started, rec.clock(), ok, error, iid))


def choose(rng: random.Random, pool_size: int, pool_cap: int) -> str:
    """The next operation: creates until a site has two instances, none beyond `pool_cap`."""
    if pool_size < 2:
        return "create"
    weights = dict(WEIGHTS)
    if pool_size >= pool_cap:
        weights["create"] = 0
    kinds = list(weights)
    return rng.choices(kinds, [weights[k] for k in kinds])[0]


async def drive_site(
    site: str,
    client: Client,
    rec: Recorder,
    *,
    rate_per_s: float,
    until: float,
    max_ops: int,
    rng: random.Random,
    pool_cap: int = 8,
) -> None:
    """One site's client until the run clock reaches `until` or it made `max_ops` operations."""
    period = 1.0 / rate_per_s
    for _ in range(max_ops):
        began = rec.clock()
        if began >= until:
            return
        pool = rec.pools[site]
        kind = choose(rng, len(pool), pool_cap)
        if kind == "create":
            await create(site, client, rec)
        elif kind == "delete":
            await delete(site, client, rec, rng.choice(pool))
        else:
            await once(site, client, rec, kind, rng.choice(pool))
        await asyncio.sleep(max(0.0, period - (rec.clock() - began)))
