"""Host leases as the controller keeps them, and when a silent host may be evacuated. Pure: time comes in.

A lease is granted on each agent connection (a new generation) and renewed by each heartbeat the
controller accepts. The agent keeps its own copy on its own monotonic clock (cell.compute.lease) and
fences itself (destroys its guests) once it could not renew for the lease time. The controller never
trusts the agent's clock, nor the agent the controller's; the two sides agree only on durations.

The inequalities (real time t; r = when the controller accepted the last renewal, on its clock; s = when
the agent sent that heartbeat, on its clock; L = lease_ms, M = margin_ms, F = fence_ms; rho = the most
either clock's rate may differ from real time, so that rho * (L + F) <= M):

  1. s <= r: the agent sends before the controller receives, so the agent's lease (from s) ends first.
  2. The agent starts fencing when its clock says s + L has passed: in real time by r + L + rho*L.
  3. It has stopped its guests F later: by r + L + F + rho*(L + F) <= r + L + M + F.
  4. The controller holds the lease expired after r + L + M and refuses to renew it from then on (the
     host must come back with a new connection and a new lease, whose desired state already reflects
     any evacuation), and allows evacuation only after r + L + M + F (fencing complete).
  So a rebuilt copy never starts before the old one has stopped, if the old agent is alive. A host whose
  agent is dead while its guests run cannot fence itself: that is what `force` with the operator's word
  that the host is powered off is for (and why it needs that word).

A restarted controller does not know r: it takes its own start as r (any renewal the previous process
gave was before that), so a restart delays evacuation by at most one lease, never shortens it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cell.hosts import HostState
from fedlib.errors import FailedPrecondition, InvalidArgument


@dataclass(frozen=True)
class LeaseSettings:
    # How long one renewal holds (a heartbeat every second renews it). Long enough that a controller
    # restart or a short blip does not power a whole cell's guests off: the agent cannot tell its
    # controller being down from being cut off from it, and evacuation is manual anyway.
    lease_ms: int = 30_000
    margin_ms: int = 3_000  # clock rate and delivery slack between the two sides (M above)
    fence_ms: int = 15_000  # how long an agent may take, after its lease ended, to stop its guests

    def __post_init__(self) -> None:
        for name in ("lease_ms", "fence_ms"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be > 0", field=name)
        if self.margin_ms < 0:
            raise InvalidArgument("margin_ms must be >= 0", field="margin_ms")

    def expires_ms(self, renewed_ms: int) -> int:
        return renewed_ms + self.lease_ms + self.margin_ms

    def fenced_ms(self, renewed_ms: int) -> int:
        return self.expires_ms(renewed_ms) + self.fence_ms


class LeaseState(enum.Enum):
    HELD = "HELD"  # renewed recently: the agent may be running guests
    EXPIRED = "EXPIRED"  # not renewed for a lease plus margin: the agent is fencing, or dead
    FENCED = "FENCED"  # expired for longer than the fencing time: a live agent has stopped its guests
    REVOKED = "REVOKED"  # the operator evacuated the host: no renewal until it connects again


def lease_state(host: HostState, settings: LeaseSettings, now_ms: int) -> LeaseState:
    if host.lease_revoked:
        return LeaseState.REVOKED
    renewed = host.lease_renewed_ms
    if renewed is None:  # never leased by anyone: nothing can be running under a lease of ours
        return LeaseState.FENCED
    if now_ms <= settings.expires_ms(renewed):
        return LeaseState.HELD
    return LeaseState.EXPIRED if now_ms <= settings.fenced_ms(renewed) else LeaseState.FENCED


def may_renew(host: HostState, generation: int, settings: LeaseSettings, now_ms: int) -> bool:
    """A heartbeat renews the lease only under the generation it was granted, and only while it is held:
    an expired lease is dead, and the agent (which has fenced) connects again for a clean lease and
    desired state. Generation 0 is an agent that predates leases (it never fences, so refusing it after
    an expiry would protect nothing): it renews what its stream holds unless an evacuation revoked it,
    which is what keeps a returning host from passing for the owner of instances it no longer has."""
    if generation == 0:
        return not host.lease_revoked
    if generation != host.lease_generation:
        return False
    return lease_state(host, settings, now_ms) is LeaseState.HELD


def check_evacuation(
    host: HostState, settings: LeaseSettings, now_ms: int, *, force: bool, powered_off: bool
) -> None:
    """Raises FailedPrecondition, saying when it will be allowed, unless the host may be evacuated now."""
    if force:
        if not powered_off:
            raise FailedPrecondition(
                f"evacuating host {host.host_id} by force needs the operator's confirmation that it is "
                "powered off (its guests may still run otherwise)",
                field="powered_off",
            )
        return
    state = lease_state(host, settings, now_ms)
    if state in (LeaseState.FENCED, LeaseState.REVOKED):
        return
    renewed = host.lease_renewed_ms or 0
    wait_ms = settings.fenced_ms(renewed) - now_ms
    what = "holds its lease" if state is LeaseState.HELD else "has not finished fencing"
    raise FailedPrecondition(
        f"host {host.host_id} {what}: evacuation is allowed in {wait_ms / 1000:.1f}s if it stays silent "
        f"(lease {settings.lease_ms / 1000:g}s + margin {settings.margin_ms / 1000:g}s + fencing "
        f"{settings.fence_ms / 1000:g}s after its last renewal), or now with force once it is powered off",
        field="host",
    )


def next_generation(previous: int, now_ms: int) -> int:
    """Lease generations grow across controller restarts without being stored: the wall clock in ms,
    or one more than the last when the clock has not moved on."""
    return max(previous + 1, now_ms)
