"""Placement and the capacity ledger: properties over random cells, plus a few worked examples."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cell.placement import (
    RESOURCES,
    CapacityLedger,
    Flavor,
    HostCapacity,
    HostView,
    PlacementRequest,
    Policy,
    capacity,
    place,
    summarize,
)
from fedlib.catalog import FLAVORS
from fedlib.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from fedrpc.flavors import flavor_from_proto, flavor_to_proto

flavors = st.builds(
    Flavor,
    name=st.sampled_from(["tiny", "small", "large"]),
    vcpus=st.integers(1, 16),
    memory_mb=st.integers(1, 32768),
    disk_gb=st.integers(0, 200),
)


@st.composite
def host_lists(draw: st.DrawFn) -> list[HostView]:
    count = draw(st.integers(0, 12))
    hosts = []
    for i in range(count):
        vcpus, mem, disk = draw(st.integers(0, 32)), draw(st.integers(0, 65536)), draw(st.integers(0, 500))
        cpu_ratio = draw(st.sampled_from([1.0, 1.5, 4.0]))
        hosts.append(
            HostView(
                f"host-{i}",
                up=draw(st.booleans()) or draw(st.booleans()),
                disabled=draw(st.integers(0, 4)) == 0,
                vcpus_total=vcpus,
                memory_mb_total=mem,
                disk_gb_total=disk,
                vcpus_used=draw(st.integers(0, capacity(vcpus, cpu_ratio) + 2)),
                memory_mb_used=draw(st.integers(0, mem)),
                disk_gb_used=draw(st.integers(0, disk)),
                cpu_allocation_ratio=cpu_ratio,
                instance_count=draw(st.integers(0, 20)),
                groups=frozenset(draw(st.sets(st.sampled_from(["db", "web"]), max_size=2))),
            )
        )
    return hosts


requests = st.builds(
    PlacementRequest,
    flavor=flavors,
    policy=st.sampled_from(list(Policy)),
    group=st.sampled_from([None, "db", "web"]),
    strict_group=st.booleans(),
    avoid_hosts=st.frozensets(st.sampled_from(["host-0", "host-1"]), max_size=1),
)


def fits(h: HostView, req: PlacementRequest) -> bool:
    room = h.up and not h.disabled and h.host_id not in req.avoid_hosts
    return room and not h.free.short_of(req.flavor.resources)


def preferred_tier(hosts: list[HostView], req: PlacementRequest) -> list[HostView]:
    """The fitting hosts placement must choose among: members of the group only if nothing else fits."""
    fitting = [h for h in hosts if fits(h, req)]
    clean = [h for h in fitting if req.group not in h.groups]
    return clean if clean or req.strict_group else fitting


@settings(max_examples=200)
@given(host_lists(), requests)
def test_choice_fits_and_follows_policy(hosts: list[HostView], req: PlacementRequest) -> None:
    decision = place(req, hosts)
    tier = preferred_tier(hosts, req)
    if not tier:
        assert decision.host_id is None and decision.shortfall is not None
        with pytest.raises(ResourceExhausted):
            decision.require()
        return
    chosen = next(h for h in hosts if h.host_id == decision.require())
    assert fits(chosen, req)
    utils = [h.utilization for h in tier]
    assert chosen.utilization == (max(utils) if req.policy is Policy.PACK else min(utils))
    assert decision.group_honoured == (req.group is None or req.group not in chosen.groups)
    assert [c.host_id for c in decision.candidates][:1] == [chosen.host_id]
    assert all(fits(next(h for h in hosts if h.host_id == c.host_id), req) for c in decision.candidates)
    assert len(decision.candidates) <= 5


@settings(max_examples=200)
@given(host_lists(), requests)
def test_shortfall_names_every_short_resource(hosts: list[HostView], req: PlacementRequest) -> None:
    decision = place(req, hosts)
    if decision.host_id is not None:
        return
    assert decision.shortfall is not None
    eligible = [h for h in hosts if h.up and not h.disabled and h.host_id not in req.avoid_hosts]
    short = {r for h in eligible for r in h.free.short_of(req.flavor.resources)}
    assert {s.resource for s in decision.shortfall.resources} == short
    units = {"vcpus": "vCPUs", "memory_mb": "MB memory", "disk_gb": "GB disk"}
    for r in short:
        assert units[r] in decision.shortfall.message


def reference_ranking(hosts: list[HostView], req: PlacementRequest) -> list[str]:
    """A full sort by the documented order: anti-affinity, policy, instance count, host id."""
    sign = -1 if req.policy is Policy.PACK else 1
    keyed = [
        (req.group in h.groups, sign * h.utilization, sign * h.instance_count, h.host_id)
        for h in hosts
        if fits(h, req) and not (req.strict_group and req.group in h.groups)
    ]
    return [key[-1] for key in sorted(keyed)]


roomy_hosts = st.lists(
    st.builds(
        HostView,
        host_id=st.sampled_from([f"r{i}" for i in range(8)]),  # repeats too: the index must break ties
        up=st.just(True),
        disabled=st.just(False),
        vcpus_total=st.just(10),
        memory_mb_total=st.just(10_000),
        disk_gb_total=st.just(100),
        vcpus_used=st.sampled_from([0, 10, 20]),  # few distinct utilizations, so ties are common
        instance_count=st.integers(0, 3),
        groups=st.frozensets(st.just("db")),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(roomy_hosts, requests.filter(lambda r: r.flavor.vcpus <= 8), st.integers(1, 6))
def test_candidates_equal_a_full_sort(hosts: list[HostView], req: PlacementRequest, k: int) -> None:
    # Far more fitting hosts than candidates: the pool compacts many times during the pass.
    req = dataclasses.replace(req, flavor=Flavor("s", req.flavor.vcpus, 100, 1))
    expected = reference_ranking(hosts, req)[:k]
    assert [c.host_id for c in place(req, hosts, max_candidates=k).candidates] == expected


def test_shortfall_message_names_resource_and_closest_host() -> None:
    hosts = [HostView("host-1", True, False, 1, 4096, 100), HostView("host-2", True, False, 3, 65536, 100)]
    hosts += [HostView("host-3", False, False, 64, 65536, 100)]
    flavor = Flavor("big", 8, 2048, 10)
    decision = place(PlacementRequest(flavor), [_ratio(h, 1.0) for h in hosts])
    assert decision.shortfall is not None
    assert "no host with 8 free vCPUs (short on 2 hosts; best: host-2 with 3)" in decision.shortfall.message
    assert "1 down" in decision.shortfall.message
    with pytest.raises(ResourceExhausted, match="vCPUs"):
        decision.require()


def test_anti_affinity_prefers_an_empty_host_even_against_policy() -> None:
    full = HostView("busy", True, False, 8, 8192, 100, 6, 6000, 50, groups=frozenset({"db"}))
    empty = HostView("idle", True, False, 8, 8192, 100)
    req = PlacementRequest(Flavor("s", 1, 512, 1), Policy.PACK, group="db")
    assert place(req, [full, empty]).host_id == "idle"
    strict = PlacementRequest(Flavor("s", 1, 512, 1), group="db", strict_group=True)
    refused = place(strict, [full])
    assert refused.host_id is None and refused.shortfall is not None
    assert refused.shortfall.hosts_group_blocked == 1 and "'db'" in refused.shortfall.message


def _ratio(h: HostView, cpu: float) -> HostView:
    totals = (h.vcpus_total, h.memory_mb_total, h.disk_gb_total)
    return HostView(h.host_id, h.up, h.disabled, *totals, cpu_allocation_ratio=cpu)


@pytest.mark.parametrize(
    ("total", "ratio", "expected"), [(10, 0.7, 7), (100, 0.29, 29), (8, 4.0, 32), (3, 1.5, 4), (0, 4.0, 0)]
)
def test_capacity_rounds_down_without_float_surprises(total: int, ratio: float, expected: int) -> None:
    assert capacity(total, ratio) == expected


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vcpus": 0}, "flavor.vcpus"),
        ({"memory_mb": 0}, "flavor.memory_mb"),
        ({"disk_gb": -1}, "flavor.disk_gb"),
        ({"name": ""}, "flavor.name"),
        ({"cpu_shares": 1}, "flavor.cpu_shares"),
        ({"cpu_period_us": 999, "cpu_quota_us": 1000}, "flavor.cpu_period_us"),
        ({"cpu_quota_us": 10, "cpu_period_us": 1000}, "flavor.cpu_quota_us"),
        ({"cpu_quota_us": 1000}, "flavor.cpu_quota_us"),
        ({"memory_hard_limit_mb": 1024}, "flavor.memory_hard_limit_mb"),
        ({"disk_write_bytes_per_sec": 0}, "flavor.disk_write_bytes_per_sec"),
        ({"disk_total_iops": 10, "disk_read_iops": 5}, "flavor.disk_total_iops"),
    ],
)
def test_flavor_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"name": "f", "vcpus": 1, "memory_mb": 1024, "disk_gb": 10}
    with pytest.raises(InvalidArgument) as err:
        Flavor(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.field == field


def test_catalog_flavors_cross_the_wire_field_for_field() -> None:
    for flavor in FLAVORS.values():
        assert flavor_from_proto(flavor_to_proto(flavor)) == flavor
    bare = Flavor("bare", 1, 128, 1)  # unset knobs are 0 on the wire and None again after it
    assert flavor_to_proto(bare).cpu_shares == 0 and flavor_from_proto(flavor_to_proto(bare)) == bare


LEDGER_HOSTS = [
    HostCapacity("h0", 2, 4096, 40),
    HostCapacity("h1", 4, 2048, 20, 1.0),
    HostCapacity("h2", 1, 512, 5),
]
ops = st.lists(
    st.tuples(st.booleans(), st.sampled_from(["h0", "h1", "h2"]), st.integers(0, 9), flavors), max_size=40
)


@settings(max_examples=200)
@given(ops)
def test_ledger_never_over_commits_and_matches_a_model(steps: list[tuple[bool, str, int, Flavor]]) -> None:
    ledger = CapacityLedger(LEDGER_HOSTS)
    model: dict[str, tuple[str, Flavor]] = {}
    for is_claim, host_id, n, flavor in steps:
        iid = f"i{n}"
        if not is_claim:
            ledger = ledger.release(iid)
            model.pop(iid, None)
            continue
        if iid in model:
            old_host, old = model[iid]
            if (old_host, old.name, old.resources) == (host_id, flavor.name, flavor.resources):
                assert ledger.claim(host_id, iid, flavor)[0] is ledger  # a repeat changes nothing
            else:
                with pytest.raises(FailedPrecondition):
                    ledger.claim(host_id, iid, flavor)
        elif ledger.free(host_id).short_of(flavor.resources):
            with pytest.raises(ResourceExhausted):
                ledger.claim(host_id, iid, flavor)
        else:
            ledger, _ = ledger.claim(host_id, iid, flavor)
            model[iid] = (host_id, flavor)
    for h in LEDGER_HOSTS:
        held = [f for (host, f) in model.values() if host == h.host_id]
        for r in RESOURCES:
            used = sum(getattr(f, r) for f in held)
            assert getattr(ledger.used(h.host_id), r) == used <= getattr(h.schedulable, r)
        assert ledger.view(h.host_id, up=True, disabled=False).instance_count == len(held)


def test_claim_is_idempotent_and_immutable() -> None:
    empty = CapacityLedger(LEDGER_HOSTS)
    small = Flavor("small", 2, 1024, 10)
    one, claim = empty.claim("h0", "i1", small, group="db")
    again, same = one.claim("h0", "i1", small, group="db")
    assert again is one and same == claim
    assert empty.claims == {} and empty.used("h0").vcpus == 0
    with pytest.raises(FailedPrecondition, match="already holds a claim"):
        one.claim("h1", "i1", small)
    assert one.view("h0", up=True, disabled=False).groups == frozenset({"db"})
    released = one.release("i1")
    assert released.release("i1") is released and released.used("h0").vcpus == 0
    with pytest.raises(NotFound):
        empty.claim("nope", "i2", small)


def test_claim_respects_the_cpu_allocation_ratio() -> None:
    ledger = CapacityLedger([HostCapacity("h", 2, 100_000, 1000)])  # 2 cores x 4.0 = 8 vCPUs
    for i in range(8):
        ledger, _ = ledger.claim("h", f"i{i}", Flavor("one", 1, 10, 1))
    with pytest.raises(ResourceExhausted, match="1 vCPUs needed, 0 free"):
        ledger.claim("h", "i9", Flavor("one", 1, 10, 1))


def test_host_removal_and_ratio_change() -> None:
    ledger, _ = CapacityLedger(LEDGER_HOSTS).claim("h1", "i1", Flavor("f", 4, 1024, 1))
    with pytest.raises(FailedPrecondition, match="still holds 1 claims"):
        ledger.without_host("h1")
    tighter = ledger.with_host(HostCapacity("h1", 2, 2048, 20, 1.0))
    assert tighter.free("h1").vcpus == -2  # kept, but nothing new fits
    assert "h0" not in ledger.without_host("h0").hosts


@settings(max_examples=200)
@given(st.lists(flavors, max_size=30), st.sampled_from(list(Policy)))
def test_placing_on_ledger_views_always_claims(stream: list[Flavor], policy: Policy) -> None:
    ledger = CapacityLedger(LEDGER_HOSTS)
    for i, flavor in enumerate(stream):
        views = [ledger.view(h.host_id, up=True, disabled=False) for h in LEDGER_HOSTS]
        decision = place(PlacementRequest(flavor, policy), views)
        if decision.host_id is not None:
            ledger, _ = ledger.claim(decision.host_id, f"i{i}", flavor)


@settings(max_examples=100)
@given(host_lists(), st.lists(flavors, max_size=3, unique_by=lambda f: f.name))
def test_summary_matches_brute_force(hosts: list[HostView], wanted: list[Flavor]) -> None:
    summary = summarize(hosts, wanted)
    usable = [h for h in hosts if h.up and not h.disabled]
    assert (summary.hosts_total, summary.hosts_usable) == (len(hosts), len(usable))
    for r in RESOURCES:
        rooms = [max(0, getattr(h.free, r)) for h in usable]
        assert getattr(summary.free, r) == sum(rooms)
        assert getattr(summary.largest_free, r) == max(rooms, default=0)
    for f in wanted:
        per_host = [
            min(max(0, getattr(h.free, r)) // getattr(f, r) for r in RESOURCES if getattr(f, r))
            for h in usable
        ]
        expected = sum(per_host)
        assert summary.flavor_slots[f.name] == expected
        assert summary.might_fit(f) == (expected > 0)
