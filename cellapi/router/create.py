"""Create: idempotent under the client's request id, at any router in any region.

1. Claim (tenant, request_id) -> instance id in this region's DC (LWT, LOCAL_SERIAL; replication.store
   explains the keying and the WAN-partition choice). A retry, here or at another region's router, gets
   the same instance id back and resumes the same steps, never a second instance.
2. Try the ranked candidate cells in order with that one id. Every cell build is idempotent on the id, so
   resuming after a crash or a retry is safe. A refusal (no room, drained, unreachable, not ready, not
   found there) moves to the next candidate; an outcome unknown (fedlib.errors: the cell may have built
   it but did not answer in time) stops with UNAVAILABLE, and the client's retry resumes with the same id.
   Today a connection lost after sending (`may_have_built`, though an Unavailable) still spills; making
   it stop like a deadline is the next step.

The id encodes the first-choice cell; when a refusal spills the build elsewhere, the index says where it
lives (cellapi.router.owners)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

from cellfed.v1 import cell_pb2, common_pb2, compute_pb2

from cellapi.router.cell_clients import CellClients
from fedlib.errors import (
    CellfedError,
    FailedPrecondition,
    Happened,
    NotFound,
    OutcomeUnknown,
    ResourceExhausted,
    Unavailable,
)
from fedlib.flavor import Flavor
from fedlib.ids import new_instance_id
from fedrpc.flavors import flavor_to_proto
from replication.model import Cell, IdempotencyRecord
from replication.store import IdempotencyLedger

Outcome = Callable[[str], None]  # "local" | "remote" | "spilled" | "refused" | "replayed"
Lookup = Callable[[str, str], Awaitable[common_pb2.Instance]]  # (instance id, tenant) -> live instance

# What a cell says that sends the build to the next candidate: full, drained or down, not ready, or not
# found there. All of them but a ConnectionLost (see `may_have_built`) are definite: nothing happened.
SPILLS = (ResourceExhausted, FailedPrecondition, Unavailable, NotFound)


def may_have_built(error: CellfedError) -> bool:
    """The cell may have built the instance (a deadline, a connection lost after sending): the build must
    resume at that cell, under the same id, and never go to another."""
    return error.happened is Happened.MAYBE


class Creator:
    def __init__(
        self,
        *,
        region: str,
        site_id: str,
        ledger: IdempotencyLedger,
        cells: CellClients,
        clock_ms: Callable[[], int],
        timeout_s: float,
        ttl_s: int,
        peer_regions: Callable[[], Sequence[str]],
        outcome: Outcome,
        lookup: Lookup,
    ) -> None:
        self._region, self._site = region, site_id
        self._ledger, self._cells, self._now = ledger, cells, clock_ms
        self._timeout_s, self._ttl_s, self._peers, self._outcome = timeout_s, ttl_s, peer_regions, outcome
        self._lookup = lookup

    async def create(
        self,
        tenant: str,
        request: compute_pb2.CreateInstanceRequest,
        flavor: Flavor,
        fingerprint: str,
        candidates: Sequence[Cell],
        why_none: str,
    ) -> common_pb2.Instance:
        if not candidates:
            self._outcome("refused")
            raise ResourceExhausted(f"no cell can take this instance: {why_none}")
        now = self._now()
        proposed = str(new_instance_id(candidates[0].cell_id, now, random.getrandbits(80)))
        record = IdempotencyRecord(self._region, tenant, request.request_id, proposed, fingerprint, now)
        claim = await self._ledger.claim(record, ttl_s=self._ttl_s, peer_regions=self._peers())
        instance_id = claim.record.instance_id
        if instance_id != proposed:  # a replay: the first attempt's instance, wherever it landed
            try:
                found = await self._lookup(instance_id, tenant)
                self._outcome("replayed")
                return found
            except NotFound:  # the first attempt died before any cell built it: resume, home cell first
                home = instance_id.rpartition(".")[0]
                candidates = sorted(candidates, key=lambda c: c.cell_id != home)
        return await self._build(tenant, request, flavor, instance_id, candidates)

    async def _build(
        self,
        tenant: str,
        request: compute_pb2.CreateInstanceRequest,
        flavor: Flavor,
        instance_id: str,
        candidates: Sequence[Cell],
    ) -> common_pb2.Instance:
        build = cell_pb2.BuildInstanceRequest(
            instance_id=instance_id,
            tenant=tenant,
            display_name=request.display_name,
            flavor=flavor_to_proto(flavor),
            image=request.image,
            user_data=request.user_data,
            labels=request.labels,
            request_id=request.request_id,
            spread_group=request.placement.spread_group,
        )
        refusals: list[str] = []
        for n, cell in enumerate(candidates):
            try:
                result: common_pb2.Instance = await self._cells.call(
                    cell, "BuildInstance", build, self._timeout_s
                )
            except SPILLS as exc:
                refusals.append(f"{cell.cell_id}: {exc.message}")
                continue
            except OutcomeUnknown:  # a deadline: the cell may have built it
                raise Unavailable(
                    f"cell {cell.cell_id} at site {cell.site_id} did not answer within "
                    f"{self._timeout_s:.0f}s; retry with the same request_id to resume"
                ) from None
            self._outcome("spilled" if n > 0 else ("local" if cell.site_id == self._site else "remote"))
            return result
        self._outcome("refused")
        raise ResourceExhausted("every candidate cell refused: " + "; ".join(refusals))
