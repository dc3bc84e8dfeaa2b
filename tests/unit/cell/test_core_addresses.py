"""A cell's provider networks in its core (issue 12): every build gets a port per network it asks for
(the default one when it names none) with a MAC from the cell's sequence and an IPv4 address from the
pool, decided in the same step as the capacity claim and kept in the instance's record. Scripts for
each rule, then a Hypothesis state machine over the whole core: builds stored or lost to a crash before
the write, deletes, restarts from the stored rows only, time passing; after every step no two live
instances share an address or a MAC, no MAC is ever handed out twice, and a freed address stays out of
the pool for its quarantine."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cell import events as ev
from cell import lifecycle as lc
from cell.core import CellCore, CoreSettings
from cell.hosts import HostState
from cell.placement import Flavor
from cell.records import CellInstance, InstanceSpec, from_row, to_row
from fedlib.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from fedlib.macs import mac_for
from fedlib.networks import parse_networks

S, P = lc.State, lc.PowerState
SMALL = Flavor("m1.small", 1, 1024, 10)
BIG = Flavor("m1.big", 64, 1024, 10)
QUARANTINE_MS = 60_000
NETWORKS = parse_networks([
    {"name": "public", "bridge": "br-public", "default": True,
     "ipv4": {"cidr": "203.0.113.0/29", "gateway": "203.0.113.1", "pool": ["203.0.113.2", "203.0.113.5"]},
     "ipv6": {"prefix": "2001:db8:1::/64", "gateway": "2001:db8:1::1"}},
    {"name": "private", "bridge": "br-private",
     "ipv4": {"cidr": "198.51.100.0/24", "gateway": "198.51.100.1",
              "pool": ["198.51.100.10", "198.51.100.200"]}},
])  # fmt: skip
POOL = 4  # public's pool: .2 to .5
CONF = CoreSettings("par1-c1", networks=NETWORKS, address_quarantine_ms=QUARANTINE_MS)


def host(name: str, vcpus: int = 64) -> HostState:
    return HostState(name, "test:///default", vcpus, 1 << 20, 10_000, 1.0, 1.0)


def spec(n: int, networks: tuple[str, ...] = (), flavor: Flavor = SMALL) -> InstanceSpec:
    return InstanceSpec(f"par1-c1.{n:026d}", "acme", f"vm-{n}", flavor, "debian-12", created_ms=1_000,
                        networks=networks)  # fmt: skip


def run(core: CellCore, event: ev.Event, now: int) -> ev.Ready:
    ready = core.step(event, now)
    core.advance(ready)
    return ready


def cell(conf: CoreSettings = CONF) -> CellCore:
    core = CellCore(conf)
    run(core, ev.HostConnected(host("h1"), {}), 1_000)
    return core


def build(core: CellCore, n: int, now: int = 1_500, networks: tuple[str, ...] = ()) -> CellInstance:
    inst = run(core, ev.BuildRequested(spec(n, networks)), now).result
    assert inst is not None
    return inst


def delete(core: CellCore, inst: CellInstance, now: int) -> None:
    iid = inst.spec.instance_id
    run(core, ev.UserRequested(iid, "acme", lc.Delete()), now)
    gone = run(core, ev.HostHeartbeat("h1", {}), now).rows  # the host reports no domain: DELETED
    assert [r.record.state for r in gone if r.spec.instance_id == iid] == [S.DELETED]


def v4(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


def test_a_build_gets_a_port_on_the_default_network_with_the_next_mac_and_the_lowest_address() -> None:
    core = cell()
    first, second = build(core, 1), build(core, 2)
    assert [(p.network, p.mac, p.mac_sequence, p.ipv4) for p in first.ports] == [
        ("public", mac_for("par1-c1", 0), 0, v4("203.0.113.2"))
    ]
    assert [(p.mac_sequence, p.ipv4) for p in second.ports] == [(1, v4("203.0.113.3"))]
    assert core.free_addresses(1_500) == {"public": POOL - 2, "private": 191}


def test_named_networks_give_one_port_each_in_the_order_asked() -> None:
    inst = build(cell(), 1, networks=("private", "public"))
    assert [(p.network, p.ipv4) for p in inst.ports] == [
        ("private", v4("198.51.100.10")),
        ("public", v4("203.0.113.2")),
    ]
    assert len({p.mac for p in inst.ports}) == 2


@pytest.mark.parametrize(
    ("networks", "field", "says"),
    [
        (("nope",), "networks[0]", "has no network 'nope'"),
        (("public", "private", "public"), "networks[2]", "asked for twice"),
    ],
)
def test_a_build_asking_for_a_network_the_cell_lacks_is_refused_and_changes_nothing(
    networks: tuple[str, ...], field: str, says: str
) -> None:
    core = cell()
    with pytest.raises(InvalidArgument) as exc:
        run(core, ev.BuildRequested(spec(1, networks)), 1_500)
    assert exc.value.field == field and says in exc.value.message
    assert core.all_instances() == [] and core.next_mac == 0
    assert core.free_addresses(1_500)["public"] == POOL and core.ledger.used("h1").vcpus == 0


def test_a_full_pool_refuses_naming_the_network_and_takes_no_capacity() -> None:
    core = cell()
    for n in range(POOL):
        build(core, n)
    used = core.ledger.used("h1")
    with pytest.raises(ResourceExhausted) as exc:
        run(core, ev.BuildRequested(spec(99)), 1_600)
    assert "network public has no free address" in exc.value.message
    assert core.ledger.used("h1") == used and core.get(spec(99).instance_id) is None
    build(core, 100, networks=("private",))  # another network still has room


def test_capacity_refused_after_the_addresses_were_chosen_keeps_them_free() -> None:
    core = cell()
    with pytest.raises(ResourceExhausted):
        run(core, ev.BuildRequested(dataclasses.replace(spec(1), flavor=Flavor("huge", 128, 1, 1))), 1_500)
    assert core.free_addresses(1_500)["public"] == POOL
    assert build(core, 2).ports[0].ipv4 == v4("203.0.113.2")


def test_a_step_whose_rows_were_not_stored_leaves_the_address_free_and_burns_its_mac() -> None:
    core = cell()
    lost = core.step(ev.BuildRequested(spec(1)), 1_500)
    core.burn_macs(lost)  # what the controller does when the write failed (it may have landed)
    assert core.free_addresses(1_500)["public"] == POOL and core.get(spec(1).instance_id) is None
    again = build(core, 2)
    assert again.ports[0].ipv4 == v4("203.0.113.2") and again.ports[0].mac_sequence == 1


def test_a_replayed_build_gets_its_ports_back() -> None:
    core = cell()
    first = build(core, 1)
    replay = core.step(ev.BuildRequested(spec(1)), 1_700)
    assert replay.result == first and not replay.rows and replay.next_mac == core.next_mac


def test_a_deleted_instances_address_waits_out_the_quarantine() -> None:
    core = cell()
    gone = build(core, 1)
    delete(core, gone, 2_000)
    assert core.free_addresses(2_000)["public"] == POOL - 1
    assert build(core, 2, now=2_100).ports[0].ipv4 == v4("203.0.113.3")  # not the quarantined .2
    later = 2_000 + QUARANTINE_MS
    run(core, ev.HostHeartbeat("h1", {}), later)  # the host is still there
    assert core.free_addresses(later)["public"] == POOL - 1  # .2 is back, .3 is held
    # Never-used addresses first, then the one released longest ago: reuse comes as late as it can.
    assert [build(core, n, now=later).ports[0].ipv4 for n in (3, 4, 5)] == [
        v4("203.0.113.4"),
        v4("203.0.113.5"),
        v4("203.0.113.2"),
    ]


def test_ports_survive_the_row_and_a_restart_brings_the_allocations_and_the_mac_sequence_back() -> None:
    core = cell()
    kept, gone = build(core, 1, networks=("public", "private")), build(core, 2)
    delete(core, gone, 2_000)
    rows = [to_row(i) for i in core.all_instances()]
    assert from_row(to_row(kept)) == kept
    back = CellCore.restore(CONF, [host("h1")], [from_row(r) for r in rows], 2_500)
    assert back.next_mac == 3 and back.free_addresses(2_500) == core.free_addresses(2_500)
    run(back, ev.HostConnected(host("h1"), {}), 2_500)
    new = build(back, 3, now=2_600)
    assert new.ports[0].mac_sequence == 3 and new.ports[0].ipv4 == v4("203.0.113.4")


def test_an_evacuated_instance_keeps_its_mac_and_address() -> None:
    core = cell()
    run(core, ev.HostConnected(host("h2"), {}), 1_000)
    inst = build(core, 1)
    old_host = inst.record.host_id
    assert old_host is not None
    moved = run(core, ev.EvacuationRequested(old_host, force=True, powered_off=True), 2_000)
    after = core.get(inst.spec.instance_id)
    assert moved.evacuation is not None and after is not None and after.record.host_id != old_host
    assert after.ports == inst.ports


def test_a_cell_without_networks_builds_instances_without_ports() -> None:
    core = cell(CoreSettings("par1-c1"))
    assert build(core, 1).ports == ()
    with pytest.raises(InvalidArgument):
        run(core, ev.BuildRequested(spec(2, ("public",))), 1_600)


class CoreAddressMachine(RuleBasedStateMachine):
    """The whole core, restarted from what the keyspace holds: the rows of steps that were stored."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 10_000
        self.stored: dict[str, CellInstance] = {}  # the cell keyspace
        self.core = cell()
        self.n = 0
        self.macs_seen: set[int] = set()  # every MAC sequence a stored row ever carried
        self.freed_at: dict[ipaddress.IPv4Address, int] = {}

    def _store(self, ready: ev.Ready) -> None:
        for inst in ready.rows:
            self.stored[inst.spec.instance_id] = inst
        self.core.advance(ready)

    def _live(self) -> list[CellInstance]:
        return [i for i in self.stored.values() if i.record.state is not S.DELETED]

    @rule(stored=st.booleans(), networks=st.sampled_from([(), ("public",), ("private", "public")]))
    def build(self, stored: bool, networks: tuple[str, ...]) -> None:
        self.n += 1
        self._store(self.core.step(ev.HostHeartbeat("h1", self._domains()), self.now))  # h1 is alive
        free = self.core.free_addresses(self.now)["public"]
        try:
            ready = self.core.step(ev.BuildRequested(spec(self.n, networks)), self.now)
        except ResourceExhausted:
            assert free == 0, "refused while public had free addresses"
            return
        inst = ready.result
        assert inst is not None and free > 0
        for port in inst.ports:
            assert port.mac_sequence not in self.macs_seen, "a MAC handed out twice"
            freed = self.freed_at.get(port.ipv4) if port.ipv4 else None
            assert freed is None or self.now >= freed + QUARANTINE_MS, "an address reused in quarantine"
        if stored:
            self._store(ready)
            self.macs_seen.update(p.mac_sequence for p in inst.ports)
        else:  # the controller dies before the write, or the write fails: nothing installed
            self.core.burn_macs(ready)

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        inst = data.draw(st.sampled_from(sorted(self._live(), key=lambda i: i.spec.instance_id)))
        iid = inst.spec.instance_id
        self._store(self.core.step(ev.UserRequested(iid, "acme", lc.Delete()), self.now))
        self._store(self.core.step(ev.HostHeartbeat("h1", self._domains()), self.now))
        assert self.stored[iid].record.state is S.DELETED
        for port in inst.ports:
            if port.network == "public" and port.ipv4 is not None:
                self.freed_at[port.ipv4] = self.now

    def _domains(self) -> dict[str, ev.Observed]:
        live = (i for i in self._live() if i.record.state is not S.DELETING)
        return {i.spec.instance_id: ev.Observed(P.RUNNING) for i in live}

    @rule()
    def restart(self) -> None:
        rows = [from_row(to_row(i)) for i in self.stored.values()]
        self.core = CellCore.restore(CONF, [host("h1")], rows, self.now)
        run(self.core, ev.HostConnected(host("h1"), self._domains()), self.now)
        for inst in self.core.all_instances():
            self.stored[inst.spec.instance_id] = inst

    @rule(ms=st.sampled_from([1, 1_000, QUARANTINE_MS - 1, QUARANTINE_MS, 3 * QUARANTINE_MS]))
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @invariant()
    def no_two_live_instances_share_an_address_or_a_mac(self) -> None:
        ports = [(p.network, p.ipv4) for i in self._live() for p in i.ports if p.ipv4 is not None]
        macs = [p.mac for i in self.stored.values() for p in i.ports]
        assert len(ports) == len(set(ports)) and len(macs) == len(set(macs))

    @invariant()
    def the_free_count_is_the_pool_less_held_and_quarantined(self) -> None:
        held = {p.ipv4 for i in self._live() for p in i.ports if p.network == "public"}
        waiting = {a for a, t in self.freed_at.items() if t + QUARANTINE_MS > self.now} - held
        assert self.core.free_addresses(self.now)["public"] == POOL - len(held) - len(waiting)


TestCoreAddresses = CoreAddressMachine.TestCase
TestCoreAddresses.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


MOVED = parse_networks([
    {"name": "public", "bridge": "br-public", "default": True,
     "ipv4": {"cidr": "192.0.2.0/28", "gateway": "192.0.2.1", "pool": ["192.0.2.2", "192.0.2.9"]}},
])  # fmt: skip


# public dropped while a live guest is on it; public's subnet moved from under its guest's address
@pytest.mark.parametrize("declared", [NETWORKS[1:], MOVED])
def test_a_restart_refuses_a_declaration_that_pulls_a_network_from_under_its_guests(declared: object) -> None:
    core = cell()
    build(core, 1)
    rows = [from_row(to_row(i)) for i in core.all_instances()]
    with pytest.raises(FailedPrecondition) as exc:
        CellCore.restore(dataclasses.replace(CONF, networks=declared), [host("h1")], rows, 2_000)
    assert exc.value.field == "networks" and "par1-c1.0" in exc.value.message


def test_a_deleted_guest_does_not_hold_its_network_in_the_declaration() -> None:
    core = cell()
    delete(core, build(core, 1), 2_000)
    rows = [from_row(to_row(i)) for i in core.all_instances()]
    back = CellCore.restore(dataclasses.replace(CONF, networks=NETWORKS[1:]), [host("h1")], rows, 2_500)
    assert back.free_addresses(2_500) == {"private": 191}


def test_a_network_without_ipv4_is_never_counted_as_out_of_addresses() -> None:
    v6only = parse_networks([{"name": "v6", "bridge": "br-v6", "default": True,
                              "ipv6": {"prefix": "2001:db8:9::/64", "gateway": "fe80::1"}}])  # fmt: skip
    core = cell(CoreSettings("par1-c1", networks=v6only))
    assert core.free_addresses(1_500) == {}  # no gauge reading 0 for it
    assert [(p.network, p.ipv4) for p in build(core, 1).ports] == [("v6", None)]
