"""The data of a chaos run (`cellfed bench chaos`), shared by its pure parts (the nemesis schedule, the
invariant checker) and its edges (the load, the collection): what clients did and were told, what the
nemesis did, and what each source of truth held at the end. Plain frozen values; times are seconds on the
run's own clock (0 = load start) unless named `_ms` (wall-clock milliseconds, as stored rows carry)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# An instance that is not DELETED is live: it must have a record, an index row, a listing row and (once
# built, unless stopped or failed) a domain.
GONE = "DELETED"
# Statuses whose instance should have a domain on its host (the agent converges on it).
WITH_DOMAIN = frozenset({"ACTIVE", "STOPPED", "REBOOTING"})


@dataclass(frozen=True)
class Op:
    """One client operation as the client saw it (after its own retries)."""

    site: str  # where the client is
    kind: str  # create, get, list, stop, start, delete
    started: float
    ended: float
    ok: bool  # the federation answered (a definite answer, not an availability failure)
    error: str = ""  # the status code name when it failed or was refused
    instance_id: str = ""
    request_id: str = ""
    attempts: int = 1


@dataclass(frozen=True)
class Ack:
    """An acknowledged create: the client was told this instance exists."""

    instance_id: str
    tenant: str
    request_id: str
    site: str
    at: float


@dataclass(frozen=True)
class Ledger:
    """Everything the clients were told, for the checker."""

    acks: tuple[Ack, ...] = ()
    deleted: Mapping[str, float] = field(default_factory=dict)  # instance id -> when its delete was acked
    # (tenant, request id) -> every instance id any attempt of that create was answered with
    answers: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    ops: tuple[Op, ...] = ()


@dataclass(frozen=True)
class Fault:
    """One thing the nemesis did: `kind` (kill, pause, cut, ...) to `target` (a component name such as
    'cell:par1', or a site for a cut), felt at `site`, from `start` until `end` (repaired: a killed
    component restarted, a paused one continued, a cut healed)."""

    kind: str
    target: str
    site: str
    start: float
    end: float


@dataclass(frozen=True)
class Record:
    """A cell's record of one instance (cell keyspace)."""

    instance_id: str
    cell: str
    tenant: str
    request_id: str
    status: str
    host_id: str | None
    updated_ms: int


@dataclass(frozen=True)
class IndexRow:
    instance_id: str
    owner_cell: str
    tenant: str
    status: str


@dataclass(frozen=True)
class Snapshot:
    """Every source of truth at one moment, as the collection read it. A source that could not be read
    is named in `unreadable` and not compared (a missing row must never be invented by a failed read)."""

    now_ms: int
    listings: Mapping[str, Mapping[str, str]]  # router site -> {instance id: status} (its DC's listing)
    index: Mapping[str, Mapping[str, IndexRow]]  # DC -> {instance id: row}
    records: Mapping[str, Mapping[str, Record]]  # cell -> {instance id: record}
    domains: Mapping[str, int]  # host -> cellfed domains libvirt holds there (as its agent counts them)
    unreadable: tuple[str, ...] = ()
