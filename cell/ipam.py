"""Address management of one cell's provider networks: the pure core (issue 12).

The cell is the single writer of its keyspace, and an instance's addresses are persisted in its own record
with the build, so the allocator's state is never a table of its own: it is derived from the instance
records (`Allocations.from_records`) and changed in memory under the controller's claim, beside the CPU
and memory claim. Hence, with no LWT:
- a controller that dies between allocating and persisting loses only the in-memory allocation: the
  records it restarts from never held it, so nothing leaks and nothing is handed out twice;
- a released address (its instance deleted) stays out of the pool for a quarantine period after the
  delete, so traffic still on its way to the old guest never reaches a new tenant;
- a full pool is a definite refusal (ResourceExhausted naming the network): the router spills elsewhere.

Which address: one never handed out yet (a cursor walks the pool once), then the one released longest ago
whose quarantine is over (released addresses queue in release order, which with one quarantine length is
also the order they come free). Both are O(1) per allocation, whatever the pool's size or how much of it
is held, and reuse is as late as the pool allows. A replayed build is answered the address it has.

A core step does not change the allocator: it works in an `AddressTxn` over it (what it took, what it
freed), and the controller commits the transaction only once the step's rows are stored (the ledger's
rule: a failed write leaves nothing to undo). Committing is O(what the step did)."""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fedlib.errors import ResourceExhausted
from fedlib.networks import ProviderNetwork

DEFAULT_QUARANTINE_MS = 10 * 60 * 1000  # past TCP's longest lingering (2 MSL) and ARP/ND cache lifetimes
_COMPACT_AT = 1024  # consumed entries at the head of a release queue before it is trimmed


@dataclass(frozen=True)
class AddressRecord:
    """What an instance record keeps of one of its addresses (and its delete time, once deleted)."""

    instance_id: str
    network: str
    ipv4: ipaddress.IPv4Address | None
    deleted_at_ms: int | None = None  # None: the instance is live


@dataclass
class _Pool:
    """One network's IPv4 pool. Every address at or past `cursor` has never been handed out; below it,
    an address is held or waiting in `released` (ordered by when it comes free), never both."""

    start: int
    end: int
    cursor: int
    released: list[tuple[int, int]] = field(default_factory=list)  # (free from ms, address)
    head: int = 0  # entries before it were taken again
    held: int = 0

    def fresh(self, taken: int) -> int | None:
        at = self.cursor + taken
        return at if at <= self.end else None

    def reusable(self, taken: int, now_ms: int) -> int | None:
        i = self.head + taken
        if i < len(self.released) and self.released[i][0] <= now_ms:
            return self.released[i][1]
        return None

    def free_count(self, now_ms: int) -> int:
        waited = bisect.bisect_right(self.released, (now_ms, self.end + 1), lo=self.head) - self.head
        return (self.end - self.cursor + 1) + waited


class Allocations:
    def __init__(self, networks: Mapping[str, ProviderNetwork], quarantine_ms: int = DEFAULT_QUARANTINE_MS):
        self.networks = networks
        self.quarantine_ms = quarantine_ms
        self._pools = {
            name: _Pool(int(n.ipv4.pool_start), int(n.ipv4.pool_end), int(n.ipv4.pool_start))
            for name, n in networks.items()
            if n.ipv4 is not None
        }
        self._held: dict[tuple[str, int], str] = {}  # (network, address) -> the live instance holding it
        self._of: dict[tuple[str, str], int] = {}  # (instance, network) -> its address there

    @classmethod
    def from_records(
        cls,
        networks: Sequence[ProviderNetwork],
        records: Iterable[AddressRecord],
        *,
        quarantine_ms: int = DEFAULT_QUARANTINE_MS,
    ) -> Allocations:
        """The allocator as the records describe it. Addresses below the highest one ever seen that are
        neither held nor in quarantine are free now; those in quarantine come free as their delete
        time says. Records on networks no longer declared, or outside a pool, are not the pool's."""
        state = cls({n.name: n for n in networks}, quarantine_ms)
        waiting: dict[tuple[str, int], int] = {}
        for r in records:
            pool = state._pools.get(r.network)
            if r.ipv4 is None or pool is None or not pool.start <= int(r.ipv4) <= pool.end:
                continue
            key = (r.network, int(r.ipv4))
            if r.deleted_at_ms is None:
                state._held[key] = r.instance_id
                state._of[(r.instance_id, r.network)] = int(r.ipv4)
            else:
                waiting[key] = max(waiting.get(key, 0), r.deleted_at_ms + quarantine_ms)
        for name, pool in state._pools.items():
            seen = [a for (net, a) in (*state._held, *waiting) if net == name]
            pool.cursor = max(seen, default=pool.start - 1) + 1
            pool.held = sum(1 for (net, _) in state._held if net == name)
            free_now = [
                (0, a) for a in range(pool.start, pool.cursor)
                if (name, a) not in state._held and (name, a) not in waiting
            ]  # fmt: skip
            quarantined = sorted(
                (until, a) for (net, a), until in waiting.items()
                if net == name and (net, a) not in state._held
            )  # fmt: skip
            pool.released = free_now + quarantined
        return state

    def begin(self, now_ms: int) -> AddressTxn:
        return AddressTxn(self, now_ms)

    def commit(self, txn: AddressTxn) -> None:
        """Installs what a step took and freed (its rows are stored)."""
        if txn.base is not self:
            raise ValueError("a transaction commits only to the allocator it was begun on")
        for name, count in txn.fresh.items():
            self._pools[name].cursor += count
        for name, count in txn.reused.items():
            self._pools[name].head += count
        for (iid, name), address in txn.taken.items():
            self._held[(name, address)] = iid
            self._of[(iid, name)] = address
            self._pools[name].held += 1
        for iid, name in txn.released:
            if (iid, name) not in self._of:
                continue
            address = self._of.pop((iid, name))
            if self._held.get((name, address)) != iid:
                continue
            del self._held[(name, address)]
            pool = self._pools[name]
            pool.held -= 1
            pool.released.append((txn.now_ms + self.quarantine_ms, address))
        for pool in self._pools.values():
            if pool.head >= _COMPACT_AT and pool.head * 2 >= len(pool.released):
                del pool.released[: pool.head]
                pool.head = 0

    # -- one-step conveniences (a transaction of one change, committed at once) --------------------------
    def allocate(self, instance_id: str, network: str, now_ms: int) -> ipaddress.IPv4Address | None:
        txn = self.begin(now_ms)
        address = txn.allocate(instance_id, network)
        self.commit(txn)
        return address

    def release(self, instance_id: str, network: str, now_ms: int) -> None:
        txn = self.begin(now_ms)
        txn.release(instance_id, network)
        self.commit(txn)

    # -- reads ----------------------------------------------------------------------------------------
    def address_of(self, instance_id: str, network: str) -> ipaddress.IPv4Address | None:
        address = self._of.get((instance_id, network))
        return None if address is None else ipaddress.IPv4Address(address)

    def held_count(self, network: str) -> int:
        pool = self._pools.get(network)
        return 0 if pool is None else pool.held

    def free_count(self, network: str, now_ms: int) -> int:
        """What a capacity summary publishes: addresses a build could get now."""
        pool = self._pools.get(network)
        return 0 if pool is None else pool.free_count(now_ms)

    def holder(self, network: str, address: ipaddress.IPv4Address) -> str | None:
        return self._held.get((network, int(address)))


@dataclass
class AddressTxn:
    """One step's address changes over an allocator it leaves untouched until `Allocations.commit`."""

    base: Allocations
    now_ms: int
    fresh: dict[str, int] = field(default_factory=dict)  # network -> addresses taken from the cursor
    reused: dict[str, int] = field(default_factory=dict)  # network -> taken from the release queue
    taken: dict[tuple[str, str], int] = field(default_factory=dict)  # (instance, network) -> address
    released: list[tuple[str, str]] = field(default_factory=list)  # (instance, network)

    def allocate(self, instance_id: str, network: str) -> ipaddress.IPv4Address | None:
        """The instance's IPv4 address on `network` (the same one again for a replay), or None where the
        network has no IPv4 subnet; ResourceExhausted when every pool address is held or quarantined."""
        pool = self.base._pools.get(network)
        if pool is None:
            return None
        key = (instance_id, network)
        mine = self.base._of.get(key, self.taken.get(key))
        if mine is not None:
            return ipaddress.IPv4Address(mine)
        address = pool.fresh(self.fresh.get(network, 0))
        if address is not None:
            self.fresh[network] = self.fresh.get(network, 0) + 1
        else:
            address = pool.reusable(self.reused.get(network, 0), self.now_ms)
            if address is None:
                held = pool.held + sum(1 for _, name in self.taken if name == network)
                raise ResourceExhausted(
                    f"network {network} has no free address: {pool.end - pool.start + 1} in its pool, "
                    f"{held} held, the rest in quarantine after a delete"
                )
            self.reused[network] = self.reused.get(network, 0) + 1
        self.taken[key] = address
        return ipaddress.IPv4Address(address)

    def release(self, instance_id: str, network: str) -> None:
        """The instance is deleted: its address waits out the quarantine before anyone else gets it."""
        self.released.append((instance_id, network))

    @property
    def changed(self) -> bool:
        return bool(self.taken or self.released)
