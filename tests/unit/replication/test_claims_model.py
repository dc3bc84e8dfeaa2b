"""replication.model validation and replication.claims rules."""

from __future__ import annotations

import pytest

from fedlib.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from fedlib.ids import new_instance_id
from replication import claims
from replication.model import CapacitySummary, IdempotencyRecord, IndexEntry, InstanceStatus, Site, check_ttl

IID = str(new_instance_id("par1", 1_700_000_000_000, 42))


def _record(
    region: str = "eu-west", fingerprint: str = "fp", at: int = 5, iid: str = IID
) -> IdempotencyRecord:
    return IdempotencyRecord(region, "acme", "req-1", iid, fingerprint, at)


def test_model_rejects_bad_values() -> None:
    with pytest.raises(InvalidArgument):
        Site("par1", "eu-west", 91.0, 0.0, "r:1", "ENABLED", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Site("par1", "eu-west", 0.0, 0.0, "r:1", "SIDEWAYS", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        CapacitySummary("par1", 4, 5, 1, 1, 1, 1, 0, 1, 1)  # free above total
    with pytest.raises(InvalidArgument) as err:
        IndexEntry(IID, "nyc1", "par1", "acme", "vm", "m1", InstanceStatus.ACTIVE, 1, 1)
    assert err.value.field == "home_cell"
    with pytest.raises(InvalidArgument):
        _record(at=-1)
    with pytest.raises(InvalidArgument):
        IdempotencyRecord("eu-west", "acme", "bad id!", IID, "fp", 1)
    assert Site("par1", "eu-west", 0.0, 0.0, "r:1", "DRAINED", 1).state == "DRAINED"  # type: ignore[arg-type]
    for ttl in (0, -1, True, 10**12):
        with pytest.raises(InvalidArgument):
            check_ttl(ttl)


def test_claims_are_local_and_peers_deduplicated() -> None:
    assert claims.check_claim(_record(), "eu-west", 60, ["us-east", "eu-west", "us-east"]) == ("us-east",)
    with pytest.raises(FailedPrecondition):
        claims.check_claim(_record(region="us-east"), "eu-west", 60, [])
    with pytest.raises(InvalidArgument):
        claims.check_claim(_record(), "eu-west", 0, [])


def test_answer_existing() -> None:
    mine = _record()
    assert claims.answer_existing(mine, mine).won  # our own claim seen again
    retry = _record(iid=str(new_instance_id("par1", 1_700_000_000_001, 7)), at=9)
    outcome = claims.answer_existing(retry, mine)
    assert not outcome.won and outcome.record == mine
    with pytest.raises(AlreadyExists):
        claims.answer_existing(_record(fingerprint="other"), mine)


def test_duplicates_resolve_the_same_everywhere() -> None:
    a, b = _record(region="us-east", at=5), _record(region="eu-west", at=5)
    late = _record(region="ap-south", at=9)
    assert claims.oldest_first([late, a, b]) == [b, a, late]
