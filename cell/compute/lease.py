"""The agent's side of its host lease (cell.leases has the controller's side and the inequalities).
Pure: the agent passes its own monotonic clock in; the controller's clock is never read.

The lease holds until `lease_ms` after the agent SENT the heartbeat (or hello) that the controller
acknowledged: sending is before the controller's receipt, so the agent's lease always ends first. Once
it ends, the agent fences: it powers off its guests (`to_fence`) and starts nothing until a new lease
and a desired state under it arrive. Before any lease (a fresh start, a reconnect) the agent allows
itself one lease time from its start or last renewal: a restarted agent that cannot reach its
controller fences within one lease, like one that was cut off.

Why power off rather than pause: a paused guest still holds its memory and disk, and anyone with libvirt
access can resume it while its rebuilt copy runs elsewhere; a powered-off domain stays defined (so after
a short cut with no evacuation it simply boots again) and cannot come back by accident. The price is a
reboot of the guests of a host cut off for longer than its lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fedlib.states import PowerState

_SENT_KEPT = 256  # heartbeats remembered for their send time; a renewal of an older one extends nothing


@dataclass
class AgentLease:
    lease_ms: int  # until the first grant tells the controller's: the agent's own setting
    fence_ms: int
    valid_until_ms: int  # agent monotonic clock
    generation: int = 0  # 0: no lease granted on this stream (yet)
    fenced: bool = False
    _sent: dict[int, int] = field(default_factory=dict)  # seq -> when it was sent
    _seq: int = 0

    @classmethod
    def at_start(cls, now_ms: int, lease_ms: int, fence_ms: int) -> AgentLease:
        return cls(lease_ms, fence_ms, now_ms + lease_ms)

    # -- the stream -------------------------------------------------------------------------------------
    def hello_sent(self, now_ms: int) -> None:
        """A new stream: seq 0 is the hello; whatever the old stream held is no longer renewable."""
        self.generation, self._seq, self._sent = 0, 0, {0: now_ms}

    def next_heartbeat(self, now_ms: int) -> int:
        self._seq += 1
        self._sent[self._seq] = now_ms
        if len(self._sent) > _SENT_KEPT:
            del self._sent[min(self._sent)]
        return self._seq

    def granted(self, generation: int, seq: int, lease_ms: int, fence_ms: int) -> bool:
        """A grant (seq 0: a new generation on this stream) or a renewal. Returns whether the lease was
        extended. A renewal for another generation, or for an unknown heartbeat, extends nothing."""
        sent = self._sent.get(seq)
        if sent is None or (seq and generation != self.generation):
            return False
        if seq == 0:
            self.generation = generation
        self.lease_ms, self.fence_ms = lease_ms, fence_ms
        if sent + lease_ms <= self.valid_until_ms:
            return False
        self.valid_until_ms = sent + lease_ms
        self.fenced = False  # renewed past its old end: fencing is due again when this one ends
        return True

    def lost(self) -> None:
        """The controller refused a renewal: the lease is over now, whatever the clock says."""
        self.generation, self.valid_until_ms = 0, -(1 << 62)

    # -- decisions --------------------------------------------------------------------------------------
    def holds(self, now_ms: int) -> bool:
        return self.generation != 0 and now_ms <= self.valid_until_ms

    def must_fence(self, now_ms: int) -> bool:
        return not self.fenced and now_ms > self.valid_until_ms

    def fence_deadline_ms(self) -> int:
        """When the guests must be off (fence_ms after the lease ended): for the log and the metric."""
        return self.valid_until_ms + self.fence_ms


@dataclass(frozen=True)
class FenceTarget:
    name: str  # libvirt domain name
    instance_id: str


def to_fence(
    domains: Iterable[tuple[str, str | None, str | None, PowerState]], cell_id: str
) -> list[FenceTarget]:
    """Of (domain name, instance id, cell, power): this cell's domains that are not off. Foreign
    domains are never ours to touch, fenced or not."""
    return [
        FenceTarget(name, iid)
        for name, iid, cell, power in domains
        if iid is not None and cell in (None, cell_id) and power in (PowerState.RUNNING, PowerState.PAUSED)
    ]
