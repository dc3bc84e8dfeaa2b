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
Allocation takes the lowest free address: deterministic, so a replayed build gets the same one."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fedlib.errors import ResourceExhausted
from fedlib.networks import ProviderNetwork

DEFAULT_QUARANTINE_MS = 10 * 60 * 1000  # past TCP's longest lingering (2 MSL) and ARP/ND cache lifetimes


@dataclass(frozen=True)
class AddressRecord:
    """What an instance record keeps of one of its addresses (and its delete time, once deleted)."""

    instance_id: str
    network: str
    ipv4: ipaddress.IPv4Address | None
    deleted_at_ms: int | None = None  # None: the instance is live


@dataclass
class Allocations:
    networks: Mapping[str, ProviderNetwork]
    quarantine_ms: int = DEFAULT_QUARANTINE_MS
    # (network, address) -> the live instance holding it
    _held: dict[tuple[str, ipaddress.IPv4Address], str] = field(default_factory=dict)
    # (network, address) -> when it may be handed out again
    _quarantined: dict[tuple[str, ipaddress.IPv4Address], int] = field(default_factory=dict)
    # (instance, network) -> its address there: a replayed build is answered the same one
    _of: dict[tuple[str, str], ipaddress.IPv4Address] = field(default_factory=dict)

    @classmethod
    def from_records(
        cls,
        networks: Sequence[ProviderNetwork],
        records: Iterable[AddressRecord],
        *,
        quarantine_ms: int = DEFAULT_QUARANTINE_MS,
    ) -> Allocations:
        state = cls({n.name: n for n in networks}, quarantine_ms)
        for r in records:
            if r.ipv4 is None:
                continue
            key = (r.network, r.ipv4)
            if r.deleted_at_ms is None:
                state._held[key] = r.instance_id
                state._of[(r.instance_id, r.network)] = r.ipv4
            else:
                until = r.deleted_at_ms + quarantine_ms
                state._quarantined[key] = max(state._quarantined.get(key, 0), until)
        return state

    def copy(self) -> Allocations:
        """An independent copy: the core's step changes a copy, and the controller installs it only once
        the step's rows are stored (the capacity ledger's copy-on-write, for addresses)."""
        return Allocations(
            self.networks, self.quarantine_ms, dict(self._held), dict(self._quarantined), dict(self._of)
        )

    def allocate(self, instance_id: str, network: str, now_ms: int) -> ipaddress.IPv4Address | None:
        """The instance's IPv4 address on `network` (the same one again for a replay), or None where the
        network has no IPv4 subnet; ResourceExhausted when every pool address is held or quarantined."""
        net = self.networks[network]
        if net.ipv4 is None:
            return None
        mine = self._of.get((instance_id, network))
        if mine is not None:
            return mine
        subnet = net.ipv4
        for value in range(int(subnet.pool_start), int(subnet.pool_end) + 1):
            address = ipaddress.IPv4Address(value)
            key = (network, address)
            if key in self._held or self._quarantined.get(key, 0) > now_ms:
                continue
            self._quarantined.pop(key, None)
            self._held[key] = instance_id
            self._of[(instance_id, network)] = address
            return address
        raise ResourceExhausted(
            f"network {network} has no free address: {subnet.pool_size} in its pool, "
            f"{self.held_count(network)} held, the rest in quarantine after a delete"
        )

    def release(self, instance_id: str, network: str, now_ms: int) -> None:
        """The instance is deleted: its address waits out the quarantine before anyone else gets it."""
        address = self._of.pop((instance_id, network), None)
        if address is None:
            return
        key = (network, address)
        if self._held.get(key) == instance_id:
            del self._held[key]
            self._quarantined[key] = now_ms + self.quarantine_ms

    def forget(self, instance_id: str, network: str) -> None:
        """A build that was refused after allocating (another resource ran out): the address was never
        persisted nor seen by a guest, so it goes back at once, with no quarantine."""
        address = self._of.pop((instance_id, network), None)
        if address is not None and self._held.get((network, address)) == instance_id:
            del self._held[(network, address)]

    def held_count(self, network: str) -> int:
        return sum(1 for (net, _) in self._held if net == network)

    def free_count(self, network: str, now_ms: int) -> int:
        """What a capacity summary publishes: addresses a build could get now."""
        subnet = self.networks[network].ipv4
        if subnet is None:
            return 0
        quarantined = sum(
            1 for (net, _), until in self._quarantined.items() if net == network and until > now_ms
        )
        return subnet.pool_size - self.held_count(network) - quarantined

    def holder(self, network: str, address: ipaddress.IPv4Address) -> str | None:
        return self._held.get((network, address))
