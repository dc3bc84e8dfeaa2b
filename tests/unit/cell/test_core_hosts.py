"""Hosts in the cell core: leases granted and renewed by steps, the operator's disable and evacuation, and
as a Hypothesis property over random lease expiries, reconnects and evacuations: never two hosts running
one instance at once, and no instance lost."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cell import events as ev
from cell import lifecycle as lc
from cell.core import CellCore, CoreSettings
from cell.leases import LeaseSettings, LeaseState
from fedlib.errors import FailedPrecondition, NotFound
from tests.unit.cell.test_core import host, run, spec

S, P = lc.State, lc.PowerState
LEASES = LeaseSettings(lease_ms=10_000, margin_ms=2_000, fence_ms=10_000)
CONF = CoreSettings("c1", host_grace_ms=3_000, build_timeout_ms=60_000, leases=LEASES)
FENCED_AFTER = 22_000  # lease + margin + fencing


def cell(*names: str, now: int = 1_000, vcpus: int = 2) -> CellCore:
    core = CellCore(CONF)
    for name in names:
        run(core, ev.HostConnected(host(name, vcpus=vcpus), {}), now)
    return core


def running(core: CellCore, iid: str, host_id: str, now: int) -> None:
    """The host reports the instance running (under its current lease)."""
    beat = ev.HostHeartbeat(host_id, {iid: ev.Observed(P.RUNNING)}, lease_generation=lease_of(core, host_id))
    run(core, beat, now)


def lease_of(core: CellCore, host_id: str) -> int:
    h = core.hosts.get(host_id)
    assert h is not None
    return h.lease_generation


def build_active(core: CellCore, n: int, now: int) -> str:
    inst = run(core, ev.BuildRequested(spec(n)), now).result
    assert inst is not None and inst.record.host_id
    running(core, inst.spec.instance_id, inst.record.host_id, now)
    return inst.spec.instance_id


def test_a_connection_grants_a_lease_and_heartbeats_renew_it() -> None:
    core = CellCore(CONF)
    ready = run(core, ev.HostConnected(host("h1"), {}), 1_000)
    gen = lease_of(core, "h1")
    assert ready.leases == (ev.LeaseGrant("h1", gen, 0),) and gen >= 1_000
    ready = run(core, ev.HostHeartbeat("h1", {}, lease_generation=gen, seq=5), 9_000)
    assert ready.leases == (ev.LeaseGrant("h1", gen, 5),) and not ready.lease_lost
    assert core.lease_state("h1", 9_000 + 12_000) is LeaseState.HELD


def test_a_heartbeat_under_a_dead_lease_is_refused_and_counts_for_nothing() -> None:
    core = cell("h1")
    gen = lease_of(core, "h1")
    iid = build_active(core, 1, 1_000)
    late = ev.HostHeartbeat("h1", {}, lease_generation=gen, seq=9)  # says the domain is gone
    ready = run(core, late, 1_000 + 12_001)
    assert ready.lease_lost == ("h1",) and not ready.leases and not ready.rows
    assert core.get(iid).record.state is S.ACTIVE  # not taken for a lost domain
    old = run(core, ev.HostHeartbeat("h1", {}, lease_generation=gen - 1), 1_500)
    assert old.lease_lost == ("h1",)


def test_a_reconnect_is_a_new_generation() -> None:
    core = cell("h1")
    first = lease_of(core, "h1")
    run(core, ev.HostConnected(host("h1"), {}), 1_000)  # same millisecond: still a new generation
    assert lease_of(core, "h1") == first + 1


def test_disable_and_enable_take_a_host_out_of_placement_and_back() -> None:
    core = cell("h1", "h2")
    ready = run(core, ev.HostDisabledSet("h1", True), 1_100)
    assert ready.host_result is not None and ready.host_result.disabled
    assert ready.host_rows == (ready.host_result,)  # stored: a disable outlives a restart
    for n in range(2):
        inst = run(core, ev.BuildRequested(spec(n)), 1_200).result
        assert inst is not None and inst.record.host_id == "h2"
    again = run(core, ev.HostDisabledSet("h1", True), 1_300)
    assert not again.host_rows  # nothing changed, nothing written
    run(core, ev.HostDisabledSet("h1", False), 1_400)
    assert not core.hosts.get("h1").disabled  # type: ignore[union-attr]
    with pytest.raises(NotFound) as unknown:
        core.step(ev.HostDisabledSet("nope", True), 1_500)
    assert unknown.value.field == "host"


def test_evacuation_before_fencing_is_refused_saying_when() -> None:
    core = cell("h1", "h2")
    build_active(core, 1, 1_000)
    with pytest.raises(FailedPrecondition, match=r"allowed in 17\.0s"):
        core.step(ev.EvacuationRequested("h1"), 6_000)
    with pytest.raises(FailedPrecondition, match="powered off"):
        core.step(ev.EvacuationRequested("h1", force=True), 6_000)
    with pytest.raises(NotFound):
        core.step(ev.EvacuationRequested("nope"), 60_000)


def test_evacuation_rebuilds_every_instance_elsewhere_as_its_next_generation() -> None:
    core = cell("h1", "h2", "h3", vcpus=4)
    ids = [build_active(core, n, 1_000) for n in range(6)]
    on_h1 = [i.spec.instance_id for i in core.on_host("h1")]
    stopped = on_h1[0]
    run(core, ev.UserRequested(stopped, "acme", lc.Stop()), 1_100)
    for at in range(2_000, 23_000, 2_000):  # the other hosts keep renewing; h1 went silent at 1_000
        for h in ("h2", "h3"):
            running_there = {i.spec.instance_id: ev.Observed(P.RUNNING) for i in core.on_host(h)}
            run(core, ev.HostHeartbeat(h, running_there, lease_generation=lease_of(core, h)), at)
    now = 1_100 + FENCED_AFTER + 1
    ready = run(core, ev.EvacuationRequested("h1"), now)
    assert ready.evacuation is not None and not ready.evacuation.stayed
    moved = {m.instance_id: m for m in ready.evacuation.moved}
    assert set(moved) == set(on_h1)
    for iid in on_h1:
        rec = core.get(iid).record  # type: ignore[union-attr]
        assert rec.host_id in ("h2", "h3") and rec.generation == 2 == moved[iid].generation
        assert rec.state is (S.STOPPED if iid == stopped else S.BUILDING)
    assert core.on_host("h1") == [] and core.lease_state("h1", now) is LeaseState.REVOKED
    assert {"h1", "h2", "h3"} >= set(ready.desired_for) >= {"h1"}
    assert sorted(core.superseded_for("h1")) == sorted((iid, 2) for iid in on_h1)
    assert all(core.ledger.claims[iid].host_id != "h1" for iid in on_h1)
    assert sum(core.ledger.view(h, up=True, disabled=False).instance_count for h in ("h1", "h2", "h3")) == 6
    assert len(ids) == 6 and ready.rows and len(ready.publish) == len(on_h1)


def test_a_rebuilt_instance_is_active_when_its_new_host_reports_it_and_never_times_out_early() -> None:
    core = cell("h1", "h2", vcpus=4)
    iid = build_active(core, 1, 1_000)
    src = core.get(iid).record.host_id  # type: ignore[union-attr]
    dst = "h2" if src == "h1" else "h1"
    late = 500_000  # long after the create: the rebuild's clock starts at the evacuation
    run(core, ev.HostConnected(host(dst, vcpus=4), {}), late)
    run(core, ev.EvacuationRequested(src, force=True, powered_off=True), late)
    run(core, ev.Tick(), late + 1_000)
    assert core.get(iid).record.state is S.BUILDING  # type: ignore[union-attr]
    stale = ev.HostHeartbeat(
        dst, {iid: ev.Observed(P.RUNNING, generation=1)}, lease_generation=lease_of(core, dst)
    )
    run(core, stale, late + 2_000)
    assert core.get(iid).record.state is S.BUILDING  # type: ignore[union-attr] # an old copy proves nothing
    current = ev.HostHeartbeat(
        dst, {iid: ev.Observed(P.RUNNING, generation=2)}, lease_generation=lease_of(core, dst)
    )
    run(core, current, late + 3_000)
    assert core.get(iid).record.state is S.ACTIVE  # type: ignore[union-attr]


def test_what_nothing_fits_stays_and_is_reported() -> None:
    core = cell("h1", "h2", vcpus=1)
    a, b = build_active(core, 1, 1_000), build_active(core, 2, 1_000)
    src = core.get(a).record.host_id  # type: ignore[union-attr]
    ready = run(core, ev.EvacuationRequested(src, force=True, powered_off=True), 2_000)
    assert ready.evacuation is not None and not ready.evacuation.moved
    assert [iid for iid, _ in ready.evacuation.stayed] == [a] and "cannot place" in ready.evacuation.stayed[
        0
    ][1]
    assert core.get(a).record.host_id == src and core.get(b).record.generation == 1  # type: ignore[union-attr]


def test_deleting_and_error_instances_are_finished_not_rebuilt() -> None:
    core = cell("h1", now=1_000, vcpus=4)
    gone, broken = build_active(core, 1, 1_000), build_active(core, 2, 1_000)
    run(core, ev.UserRequested(gone, "acme", lc.Delete()), 1_100)
    fail = ev.Failure(P.RUNNING, 0, "create", "boom")
    run(core, ev.BuildRequested(spec(3)), 1_100)
    still = {gone: ev.Observed(P.RUNNING), broken: ev.Observed(P.RUNNING)}
    run(core, ev.HostHeartbeat("h1", still, {spec(3).instance_id: fail}, lease_of(core, "h1")), 1_200)
    ready = run(core, ev.EvacuationRequested("h1", force=True, powered_off=True), 1_300)
    assert ready.evacuation is not None
    states = {m.instance_id: (m.to_host, m.state) for m in ready.evacuation.moved}
    assert states[gone] == (None, S.DELETED)
    assert states[spec(3).instance_id] == (None, S.ERROR)
    assert [iid for iid, _ in ready.evacuation.stayed] == [broken]  # nowhere to go: one host only
    assert core.ledger.claims.keys() == {broken}


# -- the property ------------------------------------------------------------------------------------
HOSTS = ("h1", "h2", "h3")
step_kinds = st.one_of(
    st.tuples(st.just("build"), st.integers(0, 5)),
    st.tuples(st.just("beat"), st.sampled_from(HOSTS)),
    st.tuples(st.just("reconnect"), st.sampled_from(HOSTS)),
    st.tuples(st.just("silence"), st.integers(1_000, 30_000)),  # time passes; only some hosts beat
    st.tuples(st.just("evacuate"), st.sampled_from(HOSTS)),
    st.tuples(st.just("force"), st.sampled_from(HOSTS)),
)


class World:
    """Hosts as the agents would behave with the core's messages: each keeps domains with a generation,
    fences (powers off) when its own view of the lease ends, and on each desired push destroys stale copies
    and runs what it is given. A host a test 'powers off' (force) loses its guests."""

    def __init__(self) -> None:
        self.core = CellCore(CONF)
        self.now = 1_000
        self.domains: dict[str, dict[str, tuple[int, bool]]] = {h: {} for h in HOSTS}  # iid -> (gen, running)
        self.lease_until: dict[str, int] = dict.fromkeys(HOSTS, -1)
        self.alive = dict.fromkeys(HOSTS, True)
        for h in HOSTS:
            self.reconnect(h)

    def apply(self, event: ev.Event) -> ev.Ready | None:
        try:
            ready = run(self.core, event, self.now)
        except (FailedPrecondition, NotFound) as _:
            return None
        except Exception as exc:  # ResourceExhausted for builds that do not fit
            if type(exc).__name__ != "ResourceExhausted":
                raise
            return None
        for grant in ready.leases:
            self.lease_until[grant.host_id] = self.now + LEASES.lease_ms
        for host_id in ready.lease_lost:
            self.lease_until[host_id] = -1
            self.fence(host_id)
        for host_id in ready.desired_for:
            if self.core.hosts.get(host_id).connected and self.lease_until[host_id] >= self.now:  # type: ignore[union-attr]
                self.converge(host_id)
        return ready

    def converge(self, host_id: str) -> None:
        doms = self.domains[host_id]
        for iid, gen in self.core.superseded_for(host_id):
            if iid in doms and doms[iid][0] < gen:
                del doms[iid]
        for inst in self.core.on_host(host_id):
            rec = inst.record
            if (copy := doms.get(rec.instance_id)) and copy[0] < rec.generation:
                del doms[rec.instance_id]
            want_run = rec.state in (S.BUILDING, S.ACTIVE, S.REBOOTING)
            if rec.state in (S.DELETING, S.ERROR, S.DELETED):
                doms.pop(rec.instance_id, None)
            elif rec.state is S.STOPPED or want_run:
                doms[rec.instance_id] = (rec.generation, want_run)

    def fence(self, host_id: str) -> None:
        self.domains[host_id] = {i: (g, False) for i, (g, _) in self.domains[host_id].items()}

    def reconnect(self, host_id: str) -> None:
        self.alive[host_id] = True
        self.apply(ev.HostConnected(host(host_id, vcpus=4), self.observed(host_id)))

    def observed(self, host_id: str) -> dict[str, ev.Observed]:
        return {
            i: ev.Observed(P.RUNNING if r else P.SHUTOFF, generation=g)
            for i, (g, r) in self.domains[host_id].items()
        }

    def beat(self, host_id: str) -> None:
        if self.alive[host_id]:
            h = self.core.hosts.get(host_id)
            assert h is not None
            self.apply(ev.HostHeartbeat(host_id, self.observed(host_id), lease_generation=h.lease_generation))

    def advance(self, ms: int, beating: set[str]) -> None:
        end = self.now + ms
        while self.now < end:
            self.now = min(end, self.now + 1_000)
            for h in HOSTS:
                if self.lease_until[h] < self.now:
                    self.fence(h)  # the agent's own clock: guests off once its lease ended
            for h in sorted(beating):
                self.beat(h)

    def check(self) -> None:
        running: dict[str, list[str]] = {}
        for h, doms in self.domains.items():
            for iid, (_, on) in doms.items():
                if on:
                    running.setdefault(iid, []).append(h)
        assert all(len(hs) == 1 for hs in running.values()), running
        for inst in self.core.all_instances():  # nothing here deletes, so nothing may vanish
            rec = inst.record
            assert rec.state is not S.DELETED
            if rec.state is not S.ERROR:  # placed, and its capacity held on that host
                assert (
                    rec.host_id is not None
                    and self.core.ledger.claims[rec.instance_id].host_id == rec.host_id
                )


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step_kinds, max_size=30), silent=st.sets(st.sampled_from(HOSTS)))
def test_never_two_hosts_run_one_instance_and_nothing_is_lost(
    steps: list[tuple[str, object]], silent: set[str]
) -> None:
    w = World()
    for n in range(6):  # something to move from the start
        w.apply(ev.BuildRequested(spec(n)))
    built = 0
    for kind, arg in steps:
        if kind == "build":
            inst = w.apply(ev.BuildRequested(spec(100 + built)))
            built += 1
            del inst
        elif kind == "beat":
            w.beat(str(arg))
        elif kind == "reconnect":
            w.reconnect(str(arg))
        elif kind == "silence":
            w.advance(int(arg), set(HOSTS) - silent)  # the silent hosts are cut off: their leases run out
        elif kind == "evacuate":
            w.apply(ev.EvacuationRequested(str(arg)))
        elif kind == "force":  # the operator powers the host off first, as force demands
            host_id = str(arg)
            w.domains[host_id] = {}
            w.alive[host_id] = False
            w.apply(ev.EvacuationRequested(host_id, force=True, powered_off=True))
        w.check()
    w.check()


def test_a_restarted_controller_counts_every_lease_as_renewed_at_its_start() -> None:
    """It cannot know when the previous process last renewed: at most at its own start."""
    core = CellCore.restore(CONF, [host("h1")], [], restored_at_ms=50_000)
    assert core.lease_state("h1", 50_000 + 12_000) is LeaseState.HELD
    with pytest.raises(FailedPrecondition, match=r"allowed in 10\.0s"):
        core.step(ev.EvacuationRequested("h1"), 50_000 + 12_000)
    assert core.lease_state("h1", 50_000 + FENCED_AFTER + 1) is LeaseState.FENCED
