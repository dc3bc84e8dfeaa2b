"""Create: exactly one instance per (tenant, request id), at any router in any region.

1. Claim (tenant, request_id) -> instance id in this region's DC (LWT, LOCAL_SERIAL; replication.store
   explains the keying and the WAN-partition choice). A retry, here or at another region's router, gets
   the claim back, oldest first, and resumes it: never a second claim while the first is visible.
2. An instance id names the one cell that may build it (cell.servicer refuses any other id), and the claim
   names the id. So the claim says where the instance is or will be, with no index row needed yet: a
   replay that finds nothing goes to that cell only, and every build is idempotent on the id there.
3. Try the ranked candidates in order. A definite refusal (no room, drained, not ready, known down) moves
   on: before building in the next cell, this region's claim is moved (LWT compare-and-set) to a new id
   naming that cell, so two attempts can never both move it. An outcome unknown (a deadline, a connection
   lost after sending: `may_have_built`) stops with UNAVAILABLE; the retry resumes at the same cell.
4. What no rule here can prevent (two regions claiming at the same moment, each unable to see the other's
   claim yet; a refused cell that takes a concurrent replay's build after all) leaves two instances for
   one request. The cells settle it once the claims have replicated: the oldest claim wins everywhere,
   and the loser's cell removes its instance (cell.request_claims).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

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
from fedlib.ids import new_instance_id, parse_instance_id
from fedrpc.flavors import flavor_to_proto
from replication import claims
from replication.model import Cell, IdempotencyRecord
from replication.store import IdempotencyLedger

Outcome = Callable[[str], None]  # "local" | "remote" | "spilled" | "refused" | "replayed"
Lookup = Callable[[str, str], Awaitable[common_pb2.Instance]]  # (instance id, tenant) -> live instance
CellOf = Callable[[str], Cell | None]  # cell id -> the directory's cell, if known

# What a cell says that sends the build to the next candidate: full, drained or down, not ready, or not
# found there. Each is definite (nothing happened) unless `may_have_built` says otherwise.
SPILLS = (ResourceExhausted, FailedPrecondition, Unavailable, NotFound)


def may_have_built(error: CellfedError) -> bool:
    """The cell may have built the instance (a deadline, a connection lost after sending): the build must
    resume at that cell, under the same id, and never go to another."""
    return error.happened is Happened.MAYBE


def refusal(refusals: Sequence[tuple[str, CellfedError]]) -> CellfedError:
    """Every candidate refused. If any refused for being unavailable (down, not ready, unreachable), the
    answer may change in seconds: UNAVAILABLE, which clients retry; only a federation with no room
    anywhere is RESOURCE_EXHAUSTED."""
    text = "every candidate cell refused: " + "; ".join(f"{cell}: {exc.message}" for cell, exc in refusals)
    if any(isinstance(exc, Unavailable) for _, exc in refusals):
        return Unavailable(text)
    return ResourceExhausted(text)


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
        cell_of: CellOf,
    ) -> None:
        self._region, self._site = region, site_id
        self._ledger, self._cells, self._now = ledger, cells, clock_ms
        self._timeout_s, self._ttl_s, self._peers, self._outcome = timeout_s, ttl_s, peer_regions, outcome
        self._lookup, self._cell_of = lookup, cell_of

    async def create(
        self,
        tenant: str,
        request: compute_pb2.CreateInstanceRequest,
        flavor: Flavor,
        fingerprint: str,
        candidates: Sequence[Cell],
        why_none: str,
        *,
        transient: bool = False,
    ) -> common_pb2.Instance:
        ask = _Ask(tenant, request, flavor)
        if not candidates:  # no cell for a new instance; a replay still has the one its claim names
            seen = await self._ledger.lookup(tenant, request.request_id, [*self._peers(), self._region])
            if not seen:
                self._outcome("refused")
                if transient:  # cells that would fit are down or silent: retrying soon may work
                    raise Unavailable(f"no cell can take this instance now: {why_none}")
                raise ResourceExhausted(f"no cell can take this instance: {why_none}")
            ours = replace(seen[0], region=self._region, fingerprint=fingerprint, created_at_ms=self._now())
            # A different request under the same id is refused here as the claim would refuse it.
            return await self._replay(ask, claims.answer_existing(ours, seen[0]).record, candidates)
        now = self._now()
        proposed = _mint(candidates[0], now)
        record = IdempotencyRecord(self._region, tenant, request.request_id, proposed, fingerprint, now)
        claim = await self._ledger.claim(record, ttl_s=self._ttl_s, peer_regions=self._peers())
        if claim.won:
            return await self._walk(ask, claim.record, now, candidates)
        return await self._replay(ask, claim.record, candidates)

    async def _replay(
        self, ask: _Ask, current: IdempotencyRecord, candidates: Sequence[Cell]
    ) -> common_pb2.Instance:
        """The claim names the instance and the one cell that may hold it."""
        tenant = ask.tenant
        try:
            found = await self._lookup(current.instance_id, tenant)
            self._outcome("replayed")
            return found
        except NotFound:  # not visible yet: never built, or its answer and index row are still on the way
            pass
        named = parse_instance_id(current.instance_id).home_cell
        cell = self._cell_of(named) or next((c for c in candidates if c.cell_id == named), None)
        if cell is None:
            raise Unavailable(
                f"cell {named} of this request's instance is not in the directory; "
                "retry with the same request_id"
            )
        # Only the claim's own region may move it (LOCAL_SERIAL); elsewhere the replay tries that cell alone.
        # The time the claim came to name this id is not known here (0: the cell will not re-assert it).
        spill = [c for c in candidates if c.cell_id != named] if current.region == self._region else []
        return await self._walk(ask, current, 0, [cell, *spill])

    async def _walk(
        self, ask: _Ask, claim: IdempotencyRecord, assigned_at_ms: int, cells: Sequence[Cell]
    ) -> common_pb2.Instance:
        """One create's walk down its candidate cells under one claim."""
        refusals: list[tuple[str, CellfedError]] = []
        for n, cell in enumerate(cells):
            if parse_instance_id(claim.instance_id).home_cell != cell.cell_id:
                claim, assigned_at_ms = await self._move(claim, cell)
            try:
                result: common_pb2.Instance = await self._cells.call(
                    cell, "BuildInstance", ask.build(claim, assigned_at_ms, self._ttl_s), self._timeout_s
                )
            except SPILLS as exc:
                if may_have_built(exc):
                    raise _unknown(cell, exc) from None
                refusals.append((cell.cell_id, exc))
                continue
            except OutcomeUnknown as exc:
                raise _unknown(cell, exc) from None
            self._outcome("spilled" if n > 0 else ("local" if cell.site_id == self._site else "remote"))
            return result
        self._outcome("refused")
        raise refusal(refusals)

    async def _move(self, claim: IdempotencyRecord, cell: Cell) -> tuple[IdempotencyRecord, int]:
        """Points this region's claim at a new id naming `cell`; fails if another attempt moved it first."""
        now = self._now()
        wanted = _mint(cell, now)
        left = claims.remaining_ttl_s(claim, self._ttl_s, now)
        if left <= 0:
            raise FailedPrecondition(
                f"request_id {claim.request_id!r} has expired; use a new request_id", field="request_id"
            )
        moved = await self._ledger.reassign(claim, wanted, ttl_s=left)
        if moved.instance_id != wanted:
            raise Unavailable(
                f"another attempt of request_id {claim.request_id!r} is placing it (as "
                f"{moved.instance_id}); retry with the same request_id"
            )
        return moved, now


@dataclass(frozen=True)
class _Ask:
    tenant: str
    request: compute_pb2.CreateInstanceRequest
    flavor: Flavor

    def build(
        self, claim: IdempotencyRecord, assigned_at_ms: int, ttl_s: int
    ) -> cell_pb2.BuildInstanceRequest:
        r = self.request
        return cell_pb2.BuildInstanceRequest(
            instance_id=claim.instance_id,
            tenant=self.tenant,
            display_name=r.display_name,
            flavor=flavor_to_proto(self.flavor),
            image=r.image,
            user_data=r.user_data,
            labels=r.labels,
            request_id=r.request_id,
            spread_group=r.placement.spread_group,
            networks=r.networks,
            claim=cell_pb2.RequestClaim(
                region=claim.region,
                created_at_ms=claim.created_at_ms,
                fingerprint=claim.fingerprint,
                assigned_at_ms=assigned_at_ms,
                expires_at_ms=claim.created_at_ms + ttl_s * 1000,
            ),
        )


def _unknown(cell: Cell, exc: CellfedError) -> Unavailable:
    return Unavailable(
        f"cell {cell.cell_id} at site {cell.site_id} may have built the instance but did not answer "
        f"({exc.message}); retry with the same request_id to resume there"
    )


def _mint(cell: Cell, now_ms: int) -> str:
    return str(new_instance_id(cell.cell_id, now_ms, random.getrandbits(80)))
