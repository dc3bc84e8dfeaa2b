"""The state vocabulary every layer shares: an instance's status (the cell's lifecycle, the store's rows,
the API) and a domain's power (what a host reports, what reconcile compares). Names match the proto enums
(cellfed.v1.InstanceStatus, cellfed.v1.PowerState), so the edges convert by name."""

from __future__ import annotations

import enum


class InstanceStatus(enum.StrEnum):
    BUILDING = "BUILDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    REBOOTING = "REBOOTING"
    ERROR = "ERROR"
    DELETING = "DELETING"
    DELETED = "DELETED"
    # Derived for readers from the age of the data (cell.lifecycle.observed_status, the router's index
    # answers); never stored: the cell's records and the store's rows refuse it.
    UNKNOWN = "UNKNOWN"


class PowerState(enum.StrEnum):
    """A domain's power as a host reports it. NO_DOMAIN: none exists."""

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SHUTOFF = "SHUTOFF"
    CRASHED = "CRASHED"
    NO_DOMAIN = "NO_DOMAIN"
