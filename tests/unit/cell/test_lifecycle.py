"""The instance state machine as tables: allowed transitions with their actions, refusals, stale reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from cell.lifecycle import (
    TRANSITIONS,
    AgentCommand,
    BuildFailed,
    BuildSucceeded,
    CommandFailed,
    Delete,
    DeleteDone,
    Event,
    Fault,
    HostReported,
    Instance,
    ObservedStatus,
    PowerState,
    PublishIndex,
    Reboot,
    RebootDone,
    ReleaseCapacity,
    SendToAgent,
    Start,
    State,
    Stop,
    create,
    observed_status,
    transition,
)
from fedlib.errors import FailedPrecondition, InvalidArgument

S, C = State, AgentCommand
FAULT = Fault("DEFINE_FAILED", "libvirt: no such image")
ID, HOST = "cell-a.01jd0000000000000000000000", "host-1"


def at(state: State, fault: Fault | None = None, host: str | None = HOST) -> Instance:
    return Instance(ID, host, state, version=7, updated_ms=1_000, fault=fault)


def send(command: AgentCommand) -> SendToAgent:
    return SendToAgent(HOST, ID, command)


def publish(state: State) -> PublishIndex:
    return PublishIndex(ID, state)


RELEASE = ReleaseCapacity(ID)

# (from, event, to, actions): every allowed change, with exactly what the controller must do.
ALLOWED = [
    (S.BUILDING, BuildSucceeded(), S.ACTIVE, [publish(S.ACTIVE)]),
    (S.BUILDING, HostReported(PowerState.RUNNING), S.ACTIVE, [publish(S.ACTIVE)]),
    (S.BUILDING, BuildFailed(FAULT), S.ERROR, [send(C.DELETE), RELEASE, publish(S.ERROR)]),
    (S.BUILDING, Delete(), S.DELETING, [send(C.DELETE), publish(S.DELETING)]),
    (S.ACTIVE, Stop(), S.STOPPED, [send(C.STOP), publish(S.STOPPED)]),
    (S.ACTIVE, Reboot(), S.REBOOTING, [send(C.REBOOT), publish(S.REBOOTING)]),
    (S.ACTIVE, Delete(), S.DELETING, [send(C.DELETE), publish(S.DELETING)]),
    (S.STOPPED, Start(), S.ACTIVE, [send(C.START), publish(S.ACTIVE)]),
    (S.STOPPED, Delete(), S.DELETING, [send(C.DELETE), publish(S.DELETING)]),
    (S.REBOOTING, RebootDone(), S.ACTIVE, [publish(S.ACTIVE)]),
    (S.REBOOTING, CommandFailed(FAULT), S.ERROR, [publish(S.ERROR)]),
    (S.REBOOTING, Delete(), S.DELETING, [send(C.DELETE), publish(S.DELETING)]),
    (S.ERROR, Delete(), S.DELETING, [send(C.DELETE), publish(S.DELETING)]),
    (S.DELETING, DeleteDone(), S.DELETED, [RELEASE, publish(S.DELETED)]),
    (S.DELETING, HostReported(PowerState.NO_DOMAIN), S.DELETED, [RELEASE, publish(S.DELETED)]),
    (S.DELETING, CommandFailed(FAULT), S.ERROR, [publish(S.ERROR)]),
]

# Idempotent repeats: accepted, nothing changes, nothing to do.
NOOPS = [(S.REBOOTING, Reboot()), (S.DELETING, Delete()), (S.DELETED, Delete())]

REQUESTS: list[Event] = [Start(), Stop(), Reboot(), Delete()]
REPORTS: list[Event] = [
    BuildSucceeded(),
    BuildFailed(FAULT),
    RebootDone(),
    DeleteDone(),
    CommandFailed(FAULT),
    *(HostReported(p) for p in PowerState),
]
STORED = [s for s in State if s is not S.UNKNOWN]
LISTED = {(s, e.column()) for s in STORED for e in REQUESTS + REPORTS if (s, e.column()) in TRANSITIONS}
REFUSED = [(s, e) for s in STORED for e in REQUESTS if (s, e.column()) not in LISTED]
STALE = [(s, e) for s in STORED for e in REPORTS if (s, e.column()) not in LISTED]


def test_tables_cover_the_transition_table_exactly() -> None:
    covered = {(s, e.column()) for s, e, _, _ in ALLOWED} | {(s, e.column()) for s, e in NOOPS}
    assert covered == set(TRANSITIONS)


def ids(rows: Sequence[tuple[Any, ...]]) -> list[str]:
    return [f"{row[0].value}-{row[1].column()}" for row in rows]


@pytest.mark.parametrize(("start", "event", "end", "actions"), ALLOWED, ids=ids(ALLOWED))
def test_allowed(start: State, event: Event, end: State, actions: list[object]) -> None:
    new, done = transition(at(start), event, now_ms=5_000)
    assert (new.state, list(done)) == (end, actions)
    assert (new.version, new.updated_ms) == (8, 5_000)


@pytest.mark.parametrize(("state", "event"), NOOPS, ids=ids(NOOPS))
def test_idempotent_repeats(state: State, event: Event) -> None:
    before = at(state)
    assert transition(before, event, now_ms=5_000) == (before, ())


@pytest.mark.parametrize(("state", "event"), REFUSED, ids=ids(REFUSED))
def test_refused_requests_name_state_and_request(state: State, event: Event) -> None:
    with pytest.raises(FailedPrecondition) as err:
        transition(at(state), event, now_ms=5_000)
    assert err.value.message == f"cannot {event.kind} instance {ID}: it is {state.value}"


@pytest.mark.parametrize(("state", "event"), STALE, ids=ids(STALE))
def test_stale_reports_are_ignored(state: State, event: Event) -> None:
    before = at(state)
    assert transition(before, event, now_ms=5_000) == (before, ())


def test_refusal_table_has_the_obvious_cases() -> None:
    assert (S.ACTIVE, Start()) in REFUSED and (S.STOPPED, Stop()) in REFUSED
    assert (S.DELETED, Start()) in REFUSED and (S.BUILDING, Reboot()) in REFUSED


def test_failed_build_keeps_its_fault_and_stays_deletable() -> None:
    inst, _ = create(ID, HOST, now_ms=1)
    failed, _ = transition(inst, BuildFailed(FAULT), now_ms=2)
    assert (failed.state, failed.fault) == (S.ERROR, FAULT)
    deleting, _ = transition(failed, Delete(), now_ms=3)
    assert (deleting.state, deleting.fault) == (S.DELETING, FAULT)
    gone, actions = transition(deleting, DeleteDone(), now_ms=4)
    assert gone.state is S.DELETED and RELEASE in actions
    assert [i.version for i in (inst, failed, deleting, gone)] == [1, 2, 3, 4]


def test_create_builds_on_the_claimed_host() -> None:
    inst, actions = create(ID, HOST, now_ms=10)
    assert (inst.state, inst.version, inst.host_id) == (S.BUILDING, 1, HOST)
    assert actions == (send(C.BUILD), publish(S.BUILDING))


def test_delete_without_a_host_finishes_at_once() -> None:
    new, actions = transition(at(S.ERROR, FAULT, host=None), Delete(), now_ms=5_000)
    assert new.state is S.DELETED and actions == (RELEASE, publish(S.DELETED))


def test_clock_stepping_back_never_reorders_updated_ms() -> None:
    new, _ = transition(at(S.ACTIVE), Stop(), now_ms=10)
    assert new.updated_ms == 1_000


def test_unknown_is_never_stored() -> None:
    with pytest.raises(InvalidArgument):
        at(S.UNKNOWN)


GRACE = 30_000
OBSERVED = [
    # (state, host, host_last_seen_ms, now_ms, expected status, expected age)
    (S.ACTIVE, HOST, 100_000, 110_000, S.ACTIVE, 10_000),
    (S.ACTIVE, HOST, 100_000, 130_000, S.ACTIVE, 30_000),  # exactly at grace: still trusted
    (S.ACTIVE, HOST, 100_000, 130_001, S.UNKNOWN, 30_001),
    (S.STOPPED, HOST, 100_000, 200_000, S.UNKNOWN, 100_000),
    (S.BUILDING, HOST, None, 200_000, S.UNKNOWN, 199_000),  # host never heard from: age of the record
    (S.ACTIVE, HOST, 300_000, 200_000, S.ACTIVE, 0),  # host clock ahead: no negative ages
    (S.ERROR, HOST, 100_000, 900_000, S.ERROR, 899_000),  # the controller's own verdicts never go stale
    (S.DELETED, HOST, None, 900_000, S.DELETED, 899_000),
    (S.ERROR, None, None, 2_000, S.ERROR, 1_000),
]


@pytest.mark.parametrize(("state", "host", "seen", "now", "status", "age"), OBSERVED)
def test_observed_status(
    state: State, host: str | None, seen: int | None, now: int, status: State, age: int
) -> None:
    got = observed_status(at(state, host=host), seen, now, GRACE)
    assert got == ObservedStatus(status, state, age)
