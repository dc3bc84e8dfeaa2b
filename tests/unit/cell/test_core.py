"""The cell core as scripts of events: what each step decides (the Ready batch), that a step alone
changes nothing, and, as Hypothesis properties over random event sequences, that the incrementally kept
ledger, host views and per-host index always equal what a rebuild from scratch gives."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cell import events as ev
from cell import lifecycle as lc
from cell.core import CellCore, CoreSettings
from cell.hosts import HostState, is_up
from cell.placement import Flavor
from cell.records import CellInstance, InstanceSpec
from fedlib.errors import AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted, Unavailable

S, P = lc.State, lc.PowerState
SMALL = Flavor("m1.small", 1, 1024, 10)
GRACE = 3_000
CONF = CoreSettings("c1", host_grace_ms=GRACE, build_timeout_ms=60_000)


def host(name: str, vcpus: int = 2, memory_mb: int = 4096) -> HostState:
    return HostState(name, "test:///default", vcpus, memory_mb, 100, 1.0, 1.0)


def spec(n: int, tenant: str = "acme", flavor: Flavor = SMALL, group: str = "") -> InstanceSpec:
    return InstanceSpec(f"c1.{n:026d}", tenant, f"vm-{n}", flavor, "debian-12", created_ms=1_000,
                        spread_group=group)  # fmt: skip


def run(core: CellCore, event: ev.Event, now: int) -> ev.Ready:
    """A step whose rows were stored: what the controller does when persisting succeeds."""
    ready = core.step(event, now)
    core.advance(ready)
    return ready


def cell_with(*hosts: HostState, now: int = 1_000) -> CellCore:
    core = CellCore(CONF)
    for h in hosts:
        run(core, ev.HostConnected(h, {}), now)
    return core


def test_a_build_is_decided_by_the_step_and_installed_by_advance() -> None:
    core = cell_with(host("h1"))
    ready = core.step(ev.BuildRequested(spec(1)), 1_500)
    inst = ready.result
    assert inst is not None and inst.record.state is S.BUILDING and inst.record.host_id == "h1"
    assert ready.rows == (inst,) and ready.publish == (inst,)
    assert ready.desired_for == ("h1",)  # the host learns of the build through its desired state
    assert [e.reason for e in ready.log] == ["build requested"]
    assert ready.ledger is not None and ready.ledger.used("h1").vcpus == 1
    assert ready.views["h1"].vcpus_used == 1
    # Nothing changed yet: a failed write leaves no claim behind.
    assert core.get(inst.spec.instance_id) is None and core.ledger.used("h1").vcpus == 0
    core.advance(ready)
    assert core.get(inst.spec.instance_id) == inst and core.ledger.used("h1").vcpus == 1
    assert core.on_host("h1") == [inst] and core.building_ids() == {inst.spec.instance_id}


def test_a_repeated_build_is_idempotent_and_a_different_one_collides() -> None:
    core = cell_with(host("h1"))
    first = run(core, ev.BuildRequested(spec(1)), 1_500).result
    again = core.step(ev.BuildRequested(spec(1)), 1_600)
    assert again.result == first and not again.rows and not again.desired_for
    with pytest.raises(AlreadyExists):
        core.step(ev.BuildRequested(dataclasses.replace(spec(1), image="other")), 1_600)


@pytest.mark.parametrize(
    ("prepare", "error"),
    [
        (lambda core: setattr(core, "drained", True), Unavailable),
        (lambda core: None, ResourceExhausted),  # no host ever connected
    ],
)
def test_refused_builds_change_nothing(prepare, error) -> None:  # type: ignore[no-untyped-def]
    core = CellCore(CONF)
    if error is Unavailable:
        run(core, ev.HostConnected(host("h1"), {}), 1_000)
    prepare(core)
    with pytest.raises(error):
        core.step(ev.BuildRequested(spec(1)), 1_500)
    assert core.all_instances() == []


def test_a_host_that_went_silent_since_the_last_tick_is_not_chosen() -> None:
    core = cell_with(host("h1", vcpus=8), host("h2", vcpus=1))
    run(core, ev.HostHeartbeat("h2", {}), 4_500)  # h1 last seen at 1_000: silent past the grace at 4_500
    ready = core.step(ev.BuildRequested(spec(1)), 4_500)
    assert ready.result is not None and ready.result.record.host_id == "h2"
    assert ready.views["h1"].up is False  # the re-read view is installed with the batch


def test_host_reports_complete_builds_and_deletes_and_release_capacity() -> None:
    core = cell_with(host("h1"))
    iid = run(core, ev.BuildRequested(spec(1)), 1_100).result.spec.instance_id  # type: ignore[union-attr]
    done = run(core, ev.HostHeartbeat("h1", {iid: ev.Observed(P.RUNNING)}), 1_200)
    assert [i.record.state for i in done.rows] == [S.ACTIVE]
    assert [(b.outcome, b.seconds) for b in done.builds_finished] == [("active", 0.2)]
    deleting = run(core, ev.UserRequested(iid, "acme", lc.Delete()), 1_300)
    assert deleting.result is not None and deleting.result.record.state is S.DELETING
    assert deleting.desired_for == ("h1",)
    gone = run(core, ev.HostHeartbeat("h1", {}), 1_400)
    assert [i.record.state for i in gone.rows] == [S.DELETED]
    assert core.ledger.used("h1").vcpus == 0 and not core.get(iid).holds_claim  # type: ignore[union-attr]


def failure(wanted: lc.PowerState, generation: int = 0) -> ev.Failure:
    return ev.Failure(wanted, generation, "defineXML", "no image")


def test_host_failures_count_only_against_the_state_they_were_an_attempt_at() -> None:
    core = cell_with(host("h1"))
    iid = run(core, ev.BuildRequested(spec(1)), 1_100).result.spec.instance_id  # type: ignore[union-attr]
    # A failure at another ask (here: wanted gone) says nothing about the build.
    assert not core.step(ev.HostHeartbeat("h1", {}, {iid: failure(P.NO_DOMAIN)}), 1_150).rows
    failed = run(core, ev.HostHeartbeat("h1", {}, {iid: failure(P.RUNNING)}), 1_200)
    (inst,) = failed.rows
    assert inst.record.state is S.ERROR and inst.record.fault == lc.Fault("BUILD_FAILED", "no image")
    assert failed.failures == (failure(P.RUNNING),) and failed.desired_for == ("h1",)  # tear down
    assert core.ledger.used("h1").vcpus == 0
    # The same report again, or one from another host, changes nothing.
    assert not core.step(ev.HostHeartbeat("h1", {}, {iid: failure(P.RUNNING)}), 1_300).rows
    assert not core.step(ev.HostHeartbeat("h2", {}, {iid: failure(P.RUNNING)}), 1_300).rows


def test_a_reboot_is_a_generation_done_when_the_host_reports_it() -> None:
    core = cell_with(host("h1"))
    iid = run(core, ev.BuildRequested(spec(1)), 1_100).result.spec.instance_id  # type: ignore[union-attr]
    run(core, ev.HostHeartbeat("h1", {iid: ev.Observed(P.RUNNING)}), 1_200)
    asked = run(core, ev.UserRequested(iid, "acme", lc.Reboot()), 1_300).result
    assert asked is not None and asked.record.state is S.REBOOTING
    generation = lc.reboot_generation(asked.record)
    assert generation == asked.record.version > 0
    # A heartbeat from before the host applied it (an older generation) leaves it REBOOTING.
    assert not core.step(ev.HostHeartbeat("h1", {iid: ev.Observed(P.RUNNING, generation - 1)}), 1_400).rows
    stale = core.step(
        ev.HostHeartbeat("h1", {iid: ev.Observed(P.RUNNING)}, {iid: failure(P.RUNNING, 1)}), 1_400
    )
    assert not stale.rows  # a failure of another reboot generation is not this one's
    done = run(core, ev.HostHeartbeat("h1", {iid: ev.Observed(P.RUNNING, generation)}), 1_500)
    assert [i.record.state for i in done.rows] == [S.ACTIVE]
    again = run(core, ev.UserRequested(iid, "acme", lc.Reboot()), 1_600).result
    assert again is not None and lc.reboot_generation(again.record) > generation
    failed = run(core, ev.HostHeartbeat("h1", {iid: ev.Observed(P.RUNNING, generation)},
                                        {iid: failure(P.RUNNING, again.record.version)}), 1_700)  # fmt: skip
    assert [(i.record.state, i.record.fault.code) for i in failed.rows] == [(S.ERROR, "REBOOT_FAILED")]  # type: ignore[union-attr]


def test_a_tick_fails_stuck_builds_and_rereads_liveness() -> None:
    core = cell_with(host("h1"))
    run(core, ev.BuildRequested(spec(1)), 1_100)
    assert not core.step(ev.Tick(), 2_000).rows
    ready = run(core, ev.Tick(), 61_001)
    (inst,) = ready.rows
    assert inst.record.state is S.ERROR and inst.record.fault and inst.record.fault.code == "BUILD_TIMEOUT"
    assert ready.views["h1"].up is False and core.building_ids() == frozenset()


def test_user_requests_need_a_reporting_host_except_delete_and_respect_tenants() -> None:
    core = cell_with(host("h1"))
    iid = run(core, ev.BuildRequested(spec(1)), 1_100).result.spec.instance_id  # type: ignore[union-attr]
    run(core, ev.HostHeartbeat("h1", {iid: ev.Observed(P.RUNNING)}), 1_200)
    with pytest.raises(NotFound):
        core.step(ev.UserRequested(iid, "other-tenant", lc.Stop()), 1_300)
    with pytest.raises(FailedPrecondition):
        core.step(ev.UserRequested(iid, "acme", lc.Start()), 1_300)
    run(core, ev.HostDisconnected("h1"), 1_400)
    with pytest.raises(Unavailable):
        core.step(ev.UserRequested(iid, "acme", lc.Stop()), 1_500)
    assert core.step(ev.UserRequested(iid, "acme", lc.Delete()), 1_500).result.record.state is S.DELETING  # type: ignore[union-attr]


def test_a_reconnecting_host_keeps_its_disabled_flag_and_gets_its_desired_state() -> None:
    core = CellCore.restore(CONF, [dataclasses.replace(host("h1"), disabled=True)], [])
    ready = run(core, ev.HostConnected(host("h1"), {}), 1_000)
    assert ready.desired_for == ("h1",) and ready.host_rows[0].disabled
    with pytest.raises(ResourceExhausted):
        core.step(ev.BuildRequested(spec(1)), 1_100)


# -- properties ------------------------------------------------------------------------------------------
HOSTS = {"h1": 1, "h2": 2, "h3": 3}  # vCPUs: fixed per host, so a reconnect never over-commits one


KINDS = ("connect", "build", "build", "beat", "delete", "stop", "reboot", "tick", "drop", "fail", "fail")


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[int, str, int, bool, lc.PowerState]]:
    """Random interleavings of what routers, agents and time do to one cell, as intents that `event`
    resolves against the cell's state (so reports mostly name real instances on their real hosts)."""
    now, out = 1_000, []
    for _ in range(draw(st.integers(1, 40))):
        now += draw(st.sampled_from((0, 10, 500, 2_000, 5_000)))
        out.append((now, draw(st.sampled_from(KINDS)), draw(st.integers(0, 50)), draw(st.booleans()),
                    draw(st.sampled_from(list(P)))))  # fmt: skip
    return out


def event(core: CellCore, kind: str, n: int, flag: bool, power: lc.PowerState, built: int) -> ev.Event:
    known = core.all_instances()
    inst = known[n % len(known)] if known else None
    iid = inst.spec.instance_id if inst else "c1.none"
    h = (inst.record.host_id if inst and flag else None) or sorted(HOSTS)[n % len(HOSTS)]
    if kind == "connect":
        return ev.HostConnected(host(h, vcpus=HOSTS[h]), {})
    if kind == "build":
        return ev.BuildRequested(spec(built, group="g" if flag else ""))
    generation = inst.record.version if inst else 0
    if kind == "beat":
        seen = {iid: ev.Observed(power, generation if flag else 0)} if power is not P.NO_DOMAIN else {}
        return ev.HostHeartbeat(h, seen)
    if kind in ("delete", "stop", "reboot"):
        request = {"delete": lc.Delete(), "stop": lc.Stop(), "reboot": lc.Reboot()}[kind]
        return ev.UserRequested(iid, "acme", request)
    if kind == "fail":
        return ev.HostHeartbeat(h, {}, {iid: ev.Failure(power, generation, "call", "boom")})
    return ev.HostDisconnected(h) if kind == "drop" else ev.Tick()


def check_invariants(core: CellCore, now: int) -> None:
    holders = {i.spec.instance_id for i in core.all_instances() if i.holds_claim}
    assert set(core.ledger.claims) == holders
    for h in core.hosts.all():
        free = core.ledger.free(h.host_id)
        assert min(free.vcpus, free.memory_mb, free.disk_gb) >= 0, f"{h.host_id} over-committed"
        placed = {i.spec.instance_id for i in core.all_instances() if i.record.host_id == h.host_id}
        assert {i.spec.instance_id for i in core.on_host(h.host_id)} == placed
    rebuilt = [
        core.ledger.view(h.host_id, up=is_up(h, now, GRACE), disabled=h.disabled) for h in core.hosts.all()
    ]
    assert core.host_views(now) == rebuilt  # incremental views == a rebuild from scratch
    building = {i.spec.instance_id for i in core.all_instances() if i.record.state is S.BUILDING}
    assert core.building_ids() == building
    restored = CellCore.restore(CONF, core.hosts.all(), core.all_instances())
    assert restored.ledger.claims == core.ledger.claims


@settings(max_examples=300, deadline=None)
@given(scripts(), st.data())
def test_incremental_state_equals_a_rebuild_and_a_lone_step_changes_nothing(
    script: list[tuple[int, str, int, bool, lc.PowerState]], data: st.DataObject
) -> None:
    core = CellCore(CONF)
    for built, (now, kind, n, flag, power) in enumerate(script):
        before = _snapshot(core)
        try:
            ready = core.step(event(core, kind, n, flag, power, built), now)
        except (AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted, Unavailable):
            assert _snapshot(core) == before
            continue
        assert _snapshot(core) == before  # the step decided; nothing is installed yet
        if data.draw(st.booleans(), label="rows stored"):
            core.advance(ready)
        check_invariants(core, now)


def _snapshot(core: CellCore) -> tuple[object, ...]:
    instances: dict[str, CellInstance] = {i.spec.instance_id: i for i in core.all_instances()}
    return (instances, dict(core.ledger.claims), tuple(core.hosts.all()), core.host_views(0))
