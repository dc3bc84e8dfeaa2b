"""Decoding libvirt's state and event numbers into the agent's types (no libvirt import needed)."""

from __future__ import annotations

from cell.compute.hypervisor import DomainState, EventKind, LibvirtCallError, LifecycleEvent
from fedlib.errors import CellfedError


def test_lifecycle_event_decoding() -> None:
    assert LifecycleEvent.decode("d", "u", 5, 1) == LifecycleEvent(
        "d", "u", EventKind.STOPPED, 1, "destroyed"
    )
    assert LifecycleEvent.decode("d", "u", 2, 0).detail_name == "booted"
    assert LifecycleEvent.decode("d", "u", 6, 1).detail_name == "guest"
    assert LifecycleEvent.decode("d", "u", 3, 0).detail_name == ""  # SUSPENDED details are not named
    unknown = LifecycleEvent.decode("d", "u", 99, 99)
    assert (unknown.kind, unknown.detail_name) == (EventKind.UNKNOWN, "")


def test_power_state_tolerates_future_values() -> None:
    assert DomainState.of(1) is DomainState.RUNNING
    assert DomainState.of(5) is DomainState.SHUTOFF
    assert DomainState.of(42) is DomainState.NOSTATE


def test_libvirt_call_error_carries_call_and_message() -> None:
    err = LibvirtCallError("virDomainCreate", "Domain not found", code=42)
    assert isinstance(err, CellfedError)
    assert (err.call, err.message, err.no_domain, str(err)) == (
        "virDomainCreate",
        "Domain not found",
        True,
        "virDomainCreate: Domain not found",
    )
