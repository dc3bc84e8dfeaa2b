"""The pure rules of idempotency claims, shared by both ledgers (see replication.store for the design)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fedlib.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from fedlib.ids import parse_instance_id
from fedlib.names import check_id
from replication.model import ClaimOutcome, IdempotencyRecord, check_request_id, check_ttl


def check_claim(
    record: IdempotencyRecord, local_region: str, ttl_s: int, peer_regions: Sequence[str]
) -> tuple[str, ...]:
    """Validate a claim; returns the peer regions to consult (deduplicated, without the local one)."""
    if record.region != local_region:
        # LOCAL_SERIAL serialises only inside the caller's DC: a claim for another region's scope would
        # contend with that region's own claims from afar (DESIGN principle 3).
        raise FailedPrecondition(
            f"claim for region {record.region!r} made from region {local_region!r}; claims are local",
            field="region",
        )
    check_ttl(ttl_s)
    peers = sorted({check_id(r, "peer_regions") for r in peer_regions} - {local_region})
    return tuple(peers)


def check_reassign(record: IdempotencyRecord, local_region: str, instance_id: str, ttl_s: int) -> None:
    """A claim moves to another instance id only in its own region, for the same reasons as `check_claim`."""
    check_claim(record, local_region, ttl_s, ())
    parse_instance_id(instance_id, "instance_id")
    if instance_id == record.instance_id:
        raise InvalidArgument("a claim can only move to a different instance id", field="instance_id")


def remaining_ttl_s(record: IdempotencyRecord, ttl_s: int, now_ms: int) -> int:
    """What is left of a claim's life at `now_ms` (0: it has expired): rewrites of a claim must not
    extend it past what its first write promised."""
    return seconds_until(record.created_at_ms + ttl_s * 1000, now_ms)


def seconds_until(expires_at_ms: int, now_ms: int) -> int:
    """Whole seconds (rounded up) from `now_ms` to `expires_at_ms`; 0 once it has passed."""
    return max(0, -(-(expires_at_ms - now_ms) // 1000))


def check_lookup(request_id: str, regions: Sequence[str]) -> tuple[str, ...]:
    check_request_id(request_id)
    return tuple(sorted({check_id(r, "regions") for r in regions}))


def oldest_first(records: Iterable[IdempotencyRecord]) -> list[IdempotencyRecord]:
    """Every region orders duplicate claims the same way, so all routers give the same answer."""
    return sorted(records, key=lambda r: (r.created_at_ms, r.region))


def answer_existing(record: IdempotencyRecord, existing: IdempotencyRecord) -> ClaimOutcome:
    """A repeat of an earlier claim gets the earlier instance; a different request under the same id fails.

    The very same record found again is our own claim (a retried write that had applied): still won.
    """
    if existing == record:
        return ClaimOutcome(existing, won=True)
    if existing.fingerprint != record.fingerprint:
        raise AlreadyExists(
            f"request_id {record.request_id!r} was already used for a different request "
            f"(instance {existing.instance_id}); use a new request_id",
            field="request_id",
        )
    return ClaimOutcome(existing, won=False)
