"""The cell's address management (cell.ipam) as a state machine under Hypothesis: builds that persist or
die before persisting, deletes, controller restarts (state rebuilt from the persisted records only) and
time passing, with the invariants checked after every step:
- no two live instances ever hold one address, across restarts;
- an address freed by a delete is not handed out again before its quarantine ends;
- nothing leaks: a full pool means every address is held or in quarantine;
- a replayed build gets the address it had;
- a step's transaction that is never committed changes nothing."""

from __future__ import annotations

import ipaddress

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cell.ipam import AddressRecord, Allocations
from fedlib.errors import ResourceExhausted
from fedlib.networks import parse_networks

NETWORKS = parse_networks([
    {"name": "public", "bridge": "br-public", "default": True,
     "ipv4": {"cidr": "203.0.113.0/28", "gateway": "203.0.113.1", "pool": ["203.0.113.2", "203.0.113.6"]}},
    {"name": "v6only", "bridge": "br-v6", "ipv6": {"prefix": "2001:db8:1::/64", "gateway": "fe80::1"}},
])  # fmt: skip
POOL = 5
QUARANTINE_MS = 60_000


class IpamMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000
        self.records: dict[str, AddressRecord] = {}  # what the cell's keyspace holds
        self.freed_at: dict[ipaddress.IPv4Address, int] = {}  # address -> its last delete
        self.ipam = Allocations.from_records(NETWORKS, [], quarantine_ms=QUARANTINE_MS)
        self.next_id = 0

    def _live(self) -> dict[str, AddressRecord]:
        return {i: r for i, r in self.records.items() if r.deleted_at_ms is None}

    @rule(persists=st.booleans())
    def build(self, persists: bool) -> None:
        self.next_id += 1
        iid = f"par1-c1.i{self.next_id}"
        free_before = self.ipam.free_count("public", self.now)
        try:
            address = self.ipam.allocate(iid, "public", self.now)
        except ResourceExhausted:
            assert free_before == 0, "refused while addresses were free"
            return
        assert address is not None and free_before > 0
        last_freed = self.freed_at.get(address)
        assert last_freed is None or self.now >= last_freed + QUARANTINE_MS, "handed out inside quarantine"
        assert self.ipam.allocate(iid, "public", self.now) == address  # a replay: the same address
        if persists:
            self.records[iid] = AddressRecord(iid, "public", address)
        # else: the controller dies before the record is written; a restart must not remember it

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        iid = data.draw(st.sampled_from(sorted(self._live())))
        record = self.records[iid]
        self.ipam.release(iid, "public", self.now)
        self.records[iid] = AddressRecord(iid, "public", record.ipv4, deleted_at_ms=self.now)
        assert record.ipv4 is not None
        self.freed_at[record.ipv4] = self.now

    @rule()
    def restart(self) -> None:
        self.ipam = Allocations.from_records(NETWORKS, self.records.values(), quarantine_ms=QUARANTINE_MS)

    @rule(ms=st.sampled_from([1, 1_000, QUARANTINE_MS - 1, QUARANTINE_MS, 5 * QUARANTINE_MS]))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule()
    def a_step_never_committed_takes_nothing(self) -> None:
        before = self.ipam.free_count("public", self.now)
        txn = self.ipam.begin(self.now)
        try:
            address = txn.allocate("par1-c1.refused", "public")
        except ResourceExhausted:
            return
        # Refused after the address was chosen (no CPU left), or its write failed: never committed.
        assert address is not None and self.ipam.holder("public", address) is None
        assert self.ipam.free_count("public", self.now) == before

    @invariant()
    def no_address_is_held_twice_and_nothing_leaks(self) -> None:
        live = [r.ipv4 for r in self._live().values()]
        assert len(live) == len(set(live)), "two live instances share an address"
        for r in self._live().values():
            assert r.ipv4 is not None and self.ipam.holder("public", r.ipv4) == r.instance_id
        quarantined = {a for a, t in self.freed_at.items() if t + QUARANTINE_MS > self.now and a not in live}
        free = self.ipam.free_count("public", self.now)
        held = self.ipam.held_count("public")  # persisted and not-yet-persisted builds alike
        assert free == POOL - held - len(quarantined) >= 0

    @invariant()
    def a_network_without_ipv4_allocates_nothing(self) -> None:
        assert self.ipam.allocate("par1-c1.v6", "v6only", self.now) is None


TestIpam = IpamMachine.TestCase
TestIpam.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_records_without_ipv4_and_unknown_releases_change_nothing() -> None:
    records = [AddressRecord("par1-c1.a", "v6only", None), AddressRecord("par1-c1.b", "public", None)]
    ipam = Allocations.from_records(NETWORKS, records, quarantine_ms=QUARANTINE_MS)
    assert ipam.free_count("public", 0) == POOL and ipam.free_count("v6only", 0) == 0
    ipam.release("par1-c1.nobody", "public", 0)
    assert ipam.free_count("public", 0) == POOL
