"""The nemesis plan: reproducible from its seed, one fault at a time, every kind reachable, targets only
from the federation it is given."""

from __future__ import annotations

import itertools
import random

import pytest

from localfed.bench.chaos_nemesis import KINDS, Targets, plan

TARGETS = Targets(
    {
        "router:par1": "par1",
        "cell:par1": "par1",
        "agent:par1-h1": "par1",
        "cassandra:eu-west": "par1",
        "router:nyc1": "nyc1",
        "cell:nyc1": "nyc1",
    },
    ("par1", "nyc1"),
)


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    a = plan(random.Random(7), TARGETS, duration_s=300, interval_s=15)
    b = plan(random.Random(7), TARGETS, duration_s=300, interval_s=15)
    c = plan(random.Random(8), TARGETS, duration_s=300, interval_s=15)
    assert a == b and a != c


def test_faults_never_overlap_and_all_end_before_the_load() -> None:
    got = plan(random.Random(1), TARGETS, duration_s=200, interval_s=10)
    assert len(got) >= 15
    for first, second in itertools.pairwise(got):
        assert first.at + first.hold_s < second.at
    assert got[-1].at + got[-1].hold_s < 200


def test_every_kind_appears_and_targets_come_from_the_federation() -> None:
    got = plan(random.Random(2), TARGETS, duration_s=2000, interval_s=10)
    assert {p.kind for p in got} == set(KINDS)
    for p in got:
        if p.kind == "cut":
            assert p.target in TARGETS.sites and p.site == p.target
        else:
            assert TARGETS.components[p.target] == p.site
    killed_roles = {p.target.partition(":")[0] for p in got if p.kind == "kill"}
    assert killed_roles == {"router", "cell", "agent", "cassandra"}


def test_kinds_can_be_narrowed_and_unknown_ones_are_refused() -> None:
    only_cuts = plan(random.Random(3), TARGETS, duration_s=100, interval_s=10, kinds=("cut",))
    assert only_cuts and {p.kind for p in only_cuts} == {"cut"}
    with pytest.raises(ValueError, match="fence"):
        plan(random.Random(3), TARGETS, duration_s=100, interval_s=10, kinds=("fence",))
