"""A cell's own records, kept in its cell keyspace (replicated only in its DC): the full instance records
and the compute hosts. The cell controller is their only writer, so rows carry the controller's version
and timestamps and need no LWT; the global keyspace only ever sees the thin index rows it publishes.

Two implementations: replication.cql.cell_records (Cassandra) and replication.memory_cell (the twin), held
to the same assertions by tests/contract/test_cell_records_contract.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from fedlib.errors import InvalidArgument

# A deleted instance's record stays readable (status DELETED) this long, then ages out by TTL.
DELETED_RETENTION_S = 24 * 3600


@dataclass(frozen=True)
class InstanceRow:
    instance_id: str
    tenant: str
    name: str
    flavor: str
    image: str
    host_id: str | None
    status: str
    version: int
    created_ms: int
    updated_ms: int
    fault_code: str = ""
    fault_message: str = ""
    spec_json: str = "{}"  # resolved flavor, user data, request id, group: what a rebuild needs
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostRow:
    host_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    cpu_allocation_ratio: float
    memory_allocation_ratio: float
    libvirt_uri: str
    disabled: bool
    updated_ms: int


class CellRecords(Protocol):
    async def put_instance(self, row: InstanceRow) -> None: ...
    async def get_instance(self, instance_id: str) -> InstanceRow: ...  # NotFound when absent
    async def load_instances(self) -> list[InstanceRow]: ...  # every row, sorted by instance_id
    async def put_host(self, row: HostRow) -> None: ...
    async def load_hosts(self) -> list[HostRow]: ...  # sorted by host_id
    async def append_event(
        self, instance_id: str, at_ms: int, kind: str, status: str, detail: str, request_id: str = ""
    ) -> None: ...
    async def events(
        self, instance_id: str, day_ms: int, limit: int = 100
    ) -> list[tuple[int, str, str, str]]: ...
    # A sequence's high-water mark (the cell's MAC sequence): never lowered, whatever order writes land in.
    async def raise_high_water(self, name: str, value: int) -> None: ...
    async def high_water(self, name: str) -> int: ...  # 0 when never raised


_HIGH_WATER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def check_high_water(name: str, value: int) -> None:
    if not isinstance(name, str) or not _HIGH_WATER_NAME.fullmatch(name):
        raise InvalidArgument(f"high-water name {name!r:.40} is not a plain name", field="name")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 62:
        raise InvalidArgument(f"high-water value {value!r:.40} must be a positive count", field="value")
