"""The in-memory twin of CellRecords, for unit tests of the controller's logic."""

from __future__ import annotations

from fedlib.errors import NotFound
from replication.cell_records import DELETED_RETENTION_S, HostRow, InstanceRow, check_high_water

_DAY_MS = 86_400_000


class MemoryCellRecords:
    def __init__(self) -> None:
        self._instances: dict[str, InstanceRow] = {}
        self._hosts: dict[str, HostRow] = {}
        self._events: dict[tuple[str, int], list[tuple[int, str, str, str]]] = {}
        self._high_water: dict[str, int] = {}

    async def put_instance(self, row: InstanceRow) -> None:
        old = self._instances.get(row.instance_id)
        if old is None or row.version >= old.version:  # the same last-writer rule as the adapter
            self._instances[row.instance_id] = row

    async def get_instance(self, instance_id: str) -> InstanceRow:
        row = self._instances.get(instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id} not found in this cell")
        return row

    async def load_instances(self) -> list[InstanceRow]:
        return [self._instances[k] for k in sorted(self._instances)]

    async def put_host(self, row: HostRow) -> None:
        self._hosts[row.host_id] = row

    async def load_hosts(self) -> list[HostRow]:
        return [self._hosts[k] for k in sorted(self._hosts)]

    async def append_event(
        self, instance_id: str, at_ms: int, kind: str, status: str, detail: str, request_id: str = ""
    ) -> None:
        self._events.setdefault((instance_id, at_ms // _DAY_MS), []).append((at_ms, kind, status, detail))

    async def events(
        self, instance_id: str, day_ms: int, limit: int = 100
    ) -> list[tuple[int, str, str, str]]:
        rows = sorted(self._events.get((instance_id, day_ms // _DAY_MS), []), reverse=True)
        return rows[:limit]

    async def raise_high_water(self, name: str, value: int) -> None:
        check_high_water(name, value)
        self._high_water[name] = max(self._high_water.get(name, 0), value)

    async def high_water(self, name: str) -> int:
        return self._high_water.get(name, 0)

    def expire_deleted(self, now_ms: int) -> None:
        """What the adapter's TTL does on its own: DELETED rows age out after the retention."""
        for key, row in list(self._instances.items()):
            if row.status == "DELETED" and now_ms - row.updated_ms >= DELETED_RETENTION_S * 1000:
                del self._instances[key]
