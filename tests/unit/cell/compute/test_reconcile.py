"""Host reconcile as tables of desired x observed -> actions, the orphan policy, and foreign domains."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cell.compute.reconcile import (
    Action,
    Define,
    DefineAndStart,
    DesiredInstance,
    DesiredPower,
    DesiredState,
    Destroy,
    DriftKind,
    ObservedDomain,
    OrphanPolicy,
    ReportDrift,
    Start,
    Stop,
    Undefine,
    reconcile,
)
from cell.lifecycle import PowerState
from cell.placement import Flavor
from fedlib.errors import InvalidArgument

P, W = PowerState, DesiredPower
FLAVOR = Flavor("small", 1, 512, 5)
NOW = 1_000_000
GRACE = 60_000


def want(power: DesiredPower, iid: str = "i1", built: bool = True, spec: int = 3) -> DesiredInstance:
    return DesiredInstance(iid, power, FLAVOR, spec, built)


def dom(power: PowerState, iid: str | None = "i1", uuid: str = "u1", spec: int | None = 3) -> ObservedDomain:
    return ObservedDomain(uuid, power, iid, spec)


def kinds(actions: tuple[Action, ...]) -> list[str]:
    """Compact form for tables: action class names, drift reports as Drift:<KIND>."""
    return [f"Drift:{a.kind.value}" if isinstance(a, ReportDrift) else type(a).__name__ for a in actions]


def run(wanted: list[DesiredInstance], seen: list[ObservedDomain]) -> tuple[Action, ...]:
    plan = reconcile(DesiredState(tuple(wanted), as_of_ms=NOW), seen, {}, NOW, OrphanPolicy(GRACE))
    return plan.actions


CONVERGE = [
    # desired power, observed power (None: no domain), built before, expected actions
    (W.RUNNING, None, False, ["DefineAndStart"]),
    (W.RUNNING, None, True, ["DefineAndStart", "Drift:MISSING"]),
    (W.RUNNING, P.RUNNING, True, []),
    (W.RUNNING, P.SHUTOFF, True, ["Start", "Drift:NOT_RUNNING"]),
    (W.RUNNING, P.CRASHED, True, ["Start", "Drift:NOT_RUNNING"]),
    (W.RUNNING, P.PAUSED, True, ["Drift:PAUSED"]),
    (W.STOPPED, None, False, ["Define"]),
    (W.STOPPED, None, True, ["Define", "Drift:MISSING"]),
    (W.STOPPED, P.RUNNING, True, ["Stop", "Drift:RUNNING_WHEN_STOPPED"]),
    (W.STOPPED, P.PAUSED, True, ["Destroy", "Drift:RUNNING_WHEN_STOPPED"]),
    (W.STOPPED, P.SHUTOFF, True, []),
    (W.STOPPED, P.CRASHED, True, []),
    (W.ABSENT, None, True, []),
    (W.ABSENT, P.RUNNING, True, ["Destroy", "Undefine"]),
    (W.ABSENT, P.PAUSED, True, ["Destroy", "Undefine"]),
    (W.ABSENT, P.CRASHED, True, ["Destroy", "Undefine"]),
    (W.ABSENT, P.SHUTOFF, True, ["Undefine"]),
]


@pytest.mark.parametrize(("desired", "observed", "built", "expected"), CONVERGE)
def test_desired_by_observed(
    desired: DesiredPower, observed: PowerState | None, built: bool, expected: list[str]
) -> None:
    seen = [dom(observed)] if observed else []
    assert kinds(run([want(desired, built=built)], seen)) == expected


def test_actions_carry_the_right_targets() -> None:
    w = want(W.RUNNING)
    assert run([w], []) == (
        DefineAndStart(w),
        ReportDrift(DriftKind.MISSING, "i1", None, "built before; no domain found"),
    )
    assert run([w], [dom(P.SHUTOFF)])[0] == Start("u1", "i1")
    assert run([want(W.STOPPED)], [dom(P.RUNNING)])[0] == Stop("u1", "i1")
    assert run([want(W.STOPPED, built=False)], []) == (Define(want(W.STOPPED, built=False)),)
    assert run([want(W.ABSENT)], [dom(P.RUNNING)]) == (Destroy("u1", "i1"), Undefine("u1", "i1"))


def test_stale_spec_is_reported_not_acted_on() -> None:
    assert kinds(run([want(W.RUNNING, spec=4)], [dom(P.RUNNING, spec=3)])) == ["Drift:SPEC_STALE"]
    assert kinds(run([want(W.RUNNING, spec=4)], [dom(P.RUNNING, spec=None)])) == []


def test_duplicates_are_reported_and_left_alone_unless_unwanted() -> None:
    pair = [dom(P.RUNNING, uuid="u1"), dom(P.SHUTOFF, uuid="u2")]
    assert kinds(run([want(W.RUNNING)], pair)) == ["Drift:DUPLICATE", "Drift:DUPLICATE"]
    torn = run([want(W.ABSENT)], pair)
    assert torn == (Destroy("u1", "i1"), Undefine("u1", "i1"), Undefine("u2", "i1"))


def plan_orphan(first_seen: dict[str, int], as_of_ms: int, policy: OrphanPolicy) -> list[str]:
    plan = reconcile(DesiredState((), as_of_ms), [dom(P.RUNNING, iid="ghost")], first_seen, NOW, policy)
    return kinds(plan.actions)


ORPHANS = [
    # first seen, desired set as of, policy, expected
    ({}, NOW, OrphanPolicy(GRACE), ["Drift:ORPHAN"]),  # first sighting
    ({"u1": NOW - GRACE}, NOW, OrphanPolicy(GRACE), ["Drift:ORPHAN"]),  # exactly at grace: not yet
    ({"u1": NOW - GRACE - 1}, NOW, OrphanPolicy(GRACE), ["Destroy", "Undefine", "Drift:ORPHAN_REMOVED"]),
    # The agent has not heard from the controller since: the orphan does not age.
    ({"u1": NOW - 10 * GRACE}, NOW - 10 * GRACE + 5, OrphanPolicy(GRACE), ["Drift:ORPHAN"]),
    ({"u1": 0}, NOW, OrphanPolicy(GRACE, destroy=False), ["Drift:ORPHAN"]),
    ({"u1": 0}, NOW, OrphanPolicy(GRACE, max_destroys=0), ["Drift:ORPHAN"]),
]


@pytest.mark.parametrize(("first_seen", "as_of", "policy", "expected"), ORPHANS)
def test_orphan_policy(
    first_seen: dict[str, int], as_of: int, policy: OrphanPolicy, expected: list[str]
) -> None:
    assert plan_orphan(first_seen, as_of, policy) == expected


def test_first_seen_is_recorded_kept_and_dropped() -> None:
    desired = DesiredState((), NOW)
    plan = reconcile(desired, [dom(P.RUNNING, iid="ghost")], {"gone": 5}, NOW, OrphanPolicy(GRACE))
    assert dict(plan.orphans_first_seen) == {"u1": NOW}  # new orphan stamped now; vanished one forgotten
    later = reconcile(
        desired, [dom(P.RUNNING, iid="ghost")], plan.orphans_first_seen, NOW + 9, OrphanPolicy(GRACE)
    )
    assert dict(later.orphans_first_seen) == {"u1": NOW}
    adopted = reconcile(
        DesiredState((want(W.RUNNING, "ghost"),), NOW), [dom(P.RUNNING, "ghost")], {"u1": 1}, NOW
    )
    assert dict(adopted.orphans_first_seen) == {}


def test_destroy_budget_goes_to_the_oldest_orphans() -> None:
    doms = [dom(P.SHUTOFF, iid=f"g{i}", uuid=f"u{i}") for i in range(4)]
    first = {"u0": 40, "u1": 10, "u2": 30, "u3": 20}
    plan = reconcile(DesiredState((), NOW), doms, first, NOW, OrphanPolicy(GRACE, max_destroys=2))
    assert [a.domain_uuid for a in plan.actions if isinstance(a, Undefine)] == ["u1", "u3"]


def test_teardown_comes_before_stops_before_starts() -> None:
    wanted = [want(W.RUNNING, "a"), want(W.STOPPED, "b"), want(W.ABSENT, "c")]
    seen = [dom(P.SHUTOFF, "a", "ua"), dom(P.RUNNING, "b", "ub"), dom(P.RUNNING, "c", "uc")]
    assert kinds(run(wanted, seen)) == [
        "Destroy",
        "Undefine",
        "Stop",
        "Start",
        "Drift:NOT_RUNNING",
        "Drift:RUNNING_WHEN_STOPPED",
    ]


powers = st.sampled_from([P.RUNNING, P.PAUSED, P.SHUTOFF, P.CRASHED])


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(list(W))), unique_by=lambda t: t[0]),
    st.lists(st.tuples(st.sampled_from(["a", "b", "x", None]), powers), max_size=6),
    st.dictionaries(st.sampled_from([f"u{i}" for i in range(6)]), st.integers(0, NOW)),
)
def test_foreign_domains_are_never_touched(
    wanted: list[tuple[str, DesiredPower]],
    domains: list[tuple[str | None, PowerState]],
    first_seen: dict[str, int],
) -> None:
    seen = [dom(power, iid, f"u{i}") for i, (iid, power) in enumerate(domains)]
    plan = reconcile(
        DesiredState(tuple(want(p, i) for i, p in wanted), NOW), seen, first_seen, NOW, OrphanPolicy(0)
    )
    foreign = {d.uuid for d in seen if d.instance_id is None}
    assert set(plan.foreign_domains) == foreign
    touched = {getattr(a, "domain_uuid", None) for a in plan.actions}
    assert not touched & foreign
    assert set(plan.orphans_first_seen) <= {d.uuid for d in seen} - foreign


def test_an_observed_domain_cannot_be_no_domain() -> None:
    with pytest.raises(InvalidArgument):
        dom(P.NO_DOMAIN)


def test_a_domain_of_another_cell_is_foreign() -> None:
    other = ObservedDomain("u9", P.RUNNING, "ghost", 1, cell="cell-b")
    mine = ObservedDomain("u8", P.RUNNING, "ghost2", 1, cell="cell-a")
    plan = reconcile(
        DesiredState((), NOW, cell_id="cell-a"), [other, mine], {"u8": 0, "u9": 0}, NOW, OrphanPolicy(0)
    )
    assert plan.foreign_domains == ("u9",)
    assert {getattr(a, "domain_uuid", None) for a in plan.actions} == {"u8"}


# -- reboots as desired state ------------------------------------------------------------------------
def reboot_plan(power: PowerState | None, generation: int, applied: int) -> list[str]:
    wanted = DesiredInstance("i1", W.RUNNING, FLAVOR, 3, True, reboot_generation=generation)
    seen = [dom(power)] if power is not None else []
    state = DesiredState((wanted,), as_of_ms=NOW)
    plan = reconcile(state, seen, {}, NOW, OrphanPolicy(GRACE), rebooted={"i1": applied} if applied else {})
    return [
        f"{type(a).__name__}:{getattr(a, 'generation', getattr(a, 'reboot_generation', ''))}"
        for a in plan.actions
        if not isinstance(a, ReportDrift)
    ]


@pytest.mark.parametrize(
    ("power", "generation", "applied", "expected"),
    [
        (P.RUNNING, 7, 0, ["Reboot:7"]),  # asked for, never applied
        (P.RUNNING, 7, 5, ["Reboot:7"]),  # a newer reboot than the last applied
        (P.RUNNING, 7, 7, []),  # applied: never rebooted twice for one ask
        (P.RUNNING, 0, 0, []),  # no reboot asked for
        (P.SHUTOFF, 7, 0, ["Start:7"]),  # a fresh boot satisfies it
        (None, 7, 0, ["DefineAndStart:"]),  # no domain: built again (the executor records generation 7)
    ],
)
def test_a_reboot_generation_is_applied_once(
    power: PowerState | None, generation: int, applied: int, expected: list[str]
) -> None:
    assert reboot_plan(power, generation, applied) == expected


# -- generations: a stale copy goes at once ------------------------------------------------------------
def gen_dom(power: PowerState, generation: int | None, iid: str = "i1") -> ObservedDomain:
    return ObservedDomain("u-" + iid, power, iid, 3, None, generation)


@pytest.mark.parametrize(
    ("wanted_generation", "seen_generation", "expected"),
    [
        (2, 1, ["Destroy", "Undefine", "DefineAndStart", "Drift:STALE_GENERATION"]),  # rebuilt fresh
        (2, None, ["Destroy", "Undefine", "DefineAndStart", "Drift:STALE_GENERATION"]),  # None reads as 1
        (2, 2, []),
        (1, None, []),
        (1, 2, []),  # newer than wanted cannot be stale; never touched for it
    ],
)
def test_a_domain_older_than_the_wanted_generation_is_replaced(
    wanted_generation: int, seen_generation: int | None, expected: list[str]
) -> None:
    wanted = DesiredInstance("i1", W.RUNNING, FLAVOR, 3, generation=wanted_generation)
    assert kinds(run([wanted], [gen_dom(P.RUNNING, seen_generation)])) == expected


def test_a_stale_copy_of_an_instance_that_moved_away_is_removed_without_grace() -> None:
    state = DesiredState((), as_of_ms=NOW, superseded={"i1": 2, "i2": 3})
    seen = [gen_dom(P.RUNNING, 1, "i1"), gen_dom(P.SHUTOFF, 3, "i2"), gen_dom(P.RUNNING, 1, "i3")]
    plan = reconcile(state, seen, {}, NOW, OrphanPolicy(GRACE))
    assert kinds(plan.actions) == [
        "Destroy",
        "Undefine",
        "Drift:STALE_GENERATION",
        "Drift:ORPHAN",
        "Drift:ORPHAN",
    ]
    assert {a.instance_id for a in plan.actions if isinstance(a, Destroy | Undefine)} == {"i1"}
