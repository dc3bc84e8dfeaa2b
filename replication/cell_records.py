"""A cell's own records, kept in its cell keyspace (replicated only in its DC): the full instance records
and the compute hosts. The cell controller is their only writer, so rows carry the controller's version
and timestamps and need no LWT; the global keyspace only ever sees the thin index rows it publishes.

Two implementations: replication.cql.cell_records (Cassandra) and replication.memory_cell (the twin), held
to the same assertions by tests/contract/test_cell_records_contract.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

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
