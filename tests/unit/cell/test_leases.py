"""The controller's host leases (cell.leases): the inequalities stated there, with time passed in."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cell.hosts import HostState
from cell.leases import LeaseSettings, LeaseState, check_evacuation, lease_state, may_renew, next_generation
from fedlib.errors import FailedPrecondition, InvalidArgument

L, M, F = 10_000, 2_000, 10_000
CONF = LeaseSettings(L, M, F)


def leased(renewed: int | None, generation: int = 7, revoked: bool = False) -> HostState:
    return HostState("h1", "test:///default", 4, 8192, 100, 1.0, 1.0, connected=True,
                     last_seen_ms=renewed, lease_generation=generation, lease_renewed_ms=renewed,
                     lease_revoked=revoked)  # fmt: skip


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (1_000, LeaseState.HELD),
        (1_000 + L + M, LeaseState.HELD),  # the last instant of lease + margin
        (1_000 + L + M + 1, LeaseState.EXPIRED),
        (1_000 + L + M + F, LeaseState.EXPIRED),  # a live agent may still be powering guests off
        (1_000 + L + M + F + 1, LeaseState.FENCED),
    ],
)
def test_a_lease_is_held_then_expired_then_fenced(now: int, state: LeaseState) -> None:
    assert lease_state(leased(1_000), CONF, now) is state


def test_a_revoked_lease_and_a_never_leased_host() -> None:
    assert lease_state(leased(1_000, revoked=True), CONF, 1_001) is LeaseState.REVOKED
    assert lease_state(leased(None), CONF, 0) is LeaseState.FENCED


def test_only_a_held_lease_of_the_current_generation_is_renewed() -> None:
    host = leased(1_000, generation=7)
    assert may_renew(host, 7, CONF, 1_000 + L + M)
    assert may_renew(host, 0, CONF, 1_000)  # an agent from before leases renews what its stream holds,
    assert may_renew(host, 0, CONF, 1_000 + L + M + F + 1)  # even late (it does not fence anyway),
    assert not may_renew(dataclasses.replace(host, lease_revoked=True), 0, CONF, 1_500)  # not once evacuated
    assert not may_renew(host, 6, CONF, 1_500)  # an older stream's heartbeat
    assert not may_renew(host, 7, CONF, 1_000 + L + M + 1)  # expired is dead: a new connection is needed
    assert not may_renew(dataclasses.replace(host, lease_revoked=True), 7, CONF, 1_500)


@given(
    sent_real=st.integers(0, 10**9),
    transit=st.integers(0, 5_000),  # the heartbeat's flight from agent to controller
    drift_ppm=st.integers(-50_000, 50_000),  # the agent's clock rate error, up to 5 %
)
def test_a_live_agent_has_stopped_its_guests_before_evacuation_is_allowed(
    sent_real: int, transit: int, drift_ppm: int
) -> None:
    """The inequalities of cell.leases, in real time: the agent times its lease from its send, on a clock
    running up to rho fast or slow (rho * (L + F) <= M); the controller from its receipt."""
    settings = LeaseSettings(L, M, F)
    rho = abs(drift_ppm) / 1e6
    assert rho * (L + F) <= M
    received_real = sent_real + transit  # the controller's clock, taken as real time
    # The agent starts fencing when its own clock says L has passed since it sent, and is done F later
    # (by its clock): in real time, stretched by at most (1 + rho).
    guests_off_real = sent_real + (L + F) * (1 + drift_ppm / 1e6)
    evacuable_real = settings.fenced_ms(received_real) + 1
    assert guests_off_real <= evacuable_real
    host = leased(received_real)
    assert lease_state(host, settings, evacuable_real) is LeaseState.FENCED
    assert lease_state(host, settings, int(guests_off_real) - 1) is not LeaseState.FENCED


def test_evacuation_waits_for_fencing_and_says_when() -> None:
    host = leased(1_000)
    with pytest.raises(FailedPrecondition, match=r"holds its lease: evacuation is allowed in 22\.0s") as held:
        check_evacuation(host, CONF, 1_000, force=False, powered_off=False)
    assert held.value.field == "host"
    with pytest.raises(FailedPrecondition, match=r"has not finished fencing: evacuation is allowed in 5\.0s"):
        check_evacuation(host, CONF, 1_000 + L + M + F - 5_000, force=False, powered_off=False)
    check_evacuation(host, CONF, 1_000 + L + M + F + 1, force=False, powered_off=False)


def test_force_needs_the_operators_word_that_the_host_is_off() -> None:
    host = leased(1_000)
    with pytest.raises(FailedPrecondition, match="powered off") as refused:
        check_evacuation(host, CONF, 1_000, force=True, powered_off=False)
    assert refused.value.field == "powered_off"
    check_evacuation(host, CONF, 1_000, force=True, powered_off=True)


def test_generations_grow_across_restarts_without_being_stored() -> None:
    assert next_generation(0, 5_000) == 5_000
    assert next_generation(5_000, 5_000) == 5_001  # the clock did not move on
    assert next_generation(9_000, 5_000) == 9_001  # nor backwards


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(InvalidArgument) as bad:
        LeaseSettings(lease_ms=0)
    assert bad.value.field == "lease_ms"
    with pytest.raises(InvalidArgument):
        LeaseSettings(margin_ms=-1)
