"""Cassandra adapter for a cell's own keyspace (replication.cell_records). LOCAL_QUORUM in the cell's DC;
the keyspace is replicated only there, so nothing here ever crosses the WAN.

Instance rows are written with the record's version as the write timestamp: a late write of an older
version loses to the newer one whatever order they arrive in, without a read-before-write."""

from __future__ import annotations

import json
from typing import Any

from fedlib.errors import NotFound
from replication.cell_records import DELETED_RETENTION_S, HostRow, InstanceRow, check_high_water
from replication.cql._base import BUCKET, CqlTable, ts_us

_DAY_MS = 86_400_000
_COLUMNS = (
    "instance_id, tenant, name, flavor, image, host_id, status, fault, spec, labels, created_at, "
    "updated_at, version"
)


class CqlCellRecords(CqlTable):
    async def put_instance(self, row: InstanceRow) -> None:
        ttl = DELETED_RETENTION_S if row.status == "DELETED" else 0
        fault = json.dumps({"code": row.fault_code, "message": row.fault_message}) if row.fault_code else ""
        # Timestamp: updated_ms (microseconds) plus the version, so two changes in one millisecond still
        # order by version.
        await self.run(
            f"INSERT INTO {self.ks}.instances ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "USING TIMESTAMP ? AND TTL ?",
            (
                *(row.instance_id, row.tenant, row.name, row.flavor, row.image, row.host_id or ""),
                *(row.status, fault, row.spec_json, row.labels, row.created_ms, row.updated_ms, row.version),
                ts_us(row.updated_ms) + row.version % 1000,
                ttl,
            ),
        )

    async def get_instance(self, instance_id: str) -> InstanceRow:
        row = await self.read_one(
            f"SELECT {_COLUMNS} FROM {self.ks}.instances WHERE instance_id = ?", (instance_id,)
        )
        if row is None:
            raise NotFound(f"instance {instance_id} not found in this cell")
        return _instance(row)

    async def load_instances(self) -> list[InstanceRow]:
        # A full scan of the cell's own keyspace, paged: bounded by one cell's instances (a few thousand).
        rows = await self.read(f"SELECT {_COLUMNS} FROM {self.ks}.instances", ())
        return sorted((_instance(r) for r in rows), key=lambda r: r.instance_id)

    async def put_host(self, row: HostRow) -> None:
        state = json.dumps(
            {
                "cpu_allocation_ratio": row.cpu_allocation_ratio,
                "memory_allocation_ratio": row.memory_allocation_ratio,
                "disabled": row.disabled,
            }
        )
        await self.run(
            f"INSERT INTO {self.ks}.hosts (bucket, host_id, vcpus, mem_mb, disk_gb, state, agent_endpoint, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                BUCKET,
                row.host_id,
                row.vcpus,
                row.memory_mb,
                row.disk_gb,
                state,
                row.libvirt_uri,
                row.updated_ms,
            ),
        )

    async def load_hosts(self) -> list[HostRow]:
        rows = await self.read(
            f"SELECT host_id, vcpus, mem_mb, disk_gb, state, agent_endpoint, updated_at FROM {self.ks}.hosts "
            "WHERE bucket = ?",
            (BUCKET,),
        )
        return [_host(r) for r in rows]

    async def append_event(
        self, instance_id: str, at_ms: int, kind: str, status: str, detail: str, request_id: str = ""
    ) -> None:
        await self.run(
            f"INSERT INTO {self.ks}.instance_events (instance_id, day, at, event_id, kind, status, "
            "request_id, detail) VALUES (?, ?, ?, now(), ?, ?, ?, ?)",
            (instance_id, at_ms // _DAY_MS, at_ms, kind, status, request_id, detail),
            idempotent=False,  # now() makes a retry a second row
        )

    async def events(
        self, instance_id: str, day_ms: int, limit: int = 100
    ) -> list[tuple[int, str, str, str]]:
        rows = await self.read(
            f"SELECT at, kind, status, detail FROM {self.ks}.instance_events "
            "WHERE instance_id = ? AND day = ? LIMIT ?",
            (instance_id, day_ms // _DAY_MS, limit),
        )
        return [(r["at"], r["kind"], r["status"], r["detail"]) for r in rows]

    async def raise_high_water(self, name: str, value: int) -> None:
        # The value is the write's timestamp: a lower mark that lands later loses to a higher one, with
        # no read-before-write (the cell is this table's only writer).
        check_high_water(name, value)
        await self.run(
            f"INSERT INTO {self.ks}.high_water (name, value) VALUES (?, ?) USING TIMESTAMP ?",
            (name, value, value),
        )

    async def high_water(self, name: str) -> int:
        row = await self.read_one(f"SELECT value FROM {self.ks}.high_water WHERE name = ?", (name,))
        return int(row["value"]) if row is not None else 0


def _instance(r: dict[str, Any]) -> InstanceRow:
    fault = json.loads(r["fault"]) if r.get("fault") else {}
    return InstanceRow(
        instance_id=r["instance_id"],
        tenant=r["tenant"],
        name=r["name"],
        flavor=r["flavor"],
        image=r["image"],
        host_id=r["host_id"] or None,
        status=r["status"],
        version=r["version"],
        created_ms=r["created_at"],
        updated_ms=r["updated_at"],
        fault_code=fault.get("code", ""),
        fault_message=fault.get("message", ""),
        spec_json=r["spec"] or "{}",
        labels=dict(r["labels"] or {}),
    )


def _host(r: dict[str, Any]) -> HostRow:
    state = json.loads(r["state"] or "{}")
    return HostRow(
        host_id=r["host_id"],
        vcpus=r["vcpus"],
        memory_mb=r["mem_mb"],
        disk_gb=r["disk_gb"],
        cpu_allocation_ratio=state.get("cpu_allocation_ratio", 4.0),
        memory_allocation_ratio=state.get("memory_allocation_ratio", 1.0),
        libvirt_uri=r["agent_endpoint"] or "",
        disabled=state.get("disabled", False),
        updated_ms=r["updated_at"],
    )
