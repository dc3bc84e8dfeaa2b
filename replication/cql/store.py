"""The Cassandra implementation of replication.store: one class per aggregate, `CqlStore` wires them.

Prepared statements only, marked idempotent where running twice is harmless (every write here is: rows
carry explicit timestamps or TTLs, and the claim is an LWT). Request-path consistency is LOCAL_QUORUM,
claims are LOCAL_SERIAL (replication.cql._base). Writes stamped with the owner's `updated_at_ms` use it as
the write timestamp (USING TIMESTAMP), so no read-before-write is needed to keep the newest report.
Driver errors arrive as fedlib errors from replication.cql.session (Unavailable names the DC).
"""

from __future__ import annotations

import json
from typing import Any

from fedlib.errors import InvalidArgument, NotFound
from fedlib.ids import parse_instance_id
from fedlib.names import check_id
from replication.cql._base import BUCKET, CqlTable, Levels, decode_addresses, encode_addresses, ts_us
from replication.cql.federation_rows import CqlRevocations
from replication.cql.idempotency import CqlIdempotency
from replication.cql.listing import CqlListing
from replication.cql.session import CqlSession
from replication.model import (
    CapacitySummary,
    Cell,
    IndexEntry,
    RouterMember,
    RouterReport,
    Site,
    check_ms,
    check_ttl,
)
from replication.paging import DEFAULT_SCAN_BUDGET, new_token_key


class CqlDirectory(CqlTable):
    async def put_site(self, site: Site) -> None:
        await self.run(
            f"INSERT INTO {self.ks}.sites (bucket, site_id, region, lat, lon, router_endpoint, state, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            (
                *(BUCKET, site.site_id, site.region, site.lat, site.lon, site.router_endpoint),
                *(site.state.value, site.updated_at_ms, ts_us(site.updated_at_ms)),
            ),
        )

    async def get_site(self, site_id: str) -> Site:
        row = await self.read_one(f"{self._sites} AND site_id = ?", (BUCKET, check_id(site_id, "site_id")))
        if row is None:
            raise NotFound(f"site {site_id} not found")
        return _site(row)

    async def list_sites(self) -> list[Site]:
        return [_site(row) for row in await self.read(self._sites, (BUCKET,))]

    async def delete_site(self, site_id: str, *, at_ms: int) -> None:
        await self.run(
            f"DELETE FROM {self.ks}.sites USING TIMESTAMP ? WHERE bucket = ? AND site_id = ?",
            (ts_us(check_ms(at_ms, "at_ms")), BUCKET, check_id(site_id, "site_id")),
        )

    async def put_cell(self, cell: Cell) -> None:
        await self.run(
            f"INSERT INTO {self.ks}.cells (bucket, cell_id, site_id, region, endpoint, state, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            (
                *(BUCKET, cell.cell_id, cell.site_id, cell.region, cell.endpoint, cell.state.value),
                *(cell.updated_at_ms, ts_us(cell.updated_at_ms)),
            ),
        )

    async def get_cell(self, cell_id: str) -> Cell:
        row = await self.read_one(f"{self._cells} AND cell_id = ?", (BUCKET, check_id(cell_id, "cell_id")))
        if row is None:
            raise NotFound(f"cell {cell_id} not found")
        return _cell(row)

    async def list_cells(self) -> list[Cell]:
        return [_cell(row) for row in await self.read(self._cells, (BUCKET,))]

    async def delete_cell(self, cell_id: str, *, at_ms: int) -> None:
        await self.run(
            f"DELETE FROM {self.ks}.cells USING TIMESTAMP ? WHERE bucket = ? AND cell_id = ?",
            (ts_us(check_ms(at_ms, "at_ms")), BUCKET, check_id(cell_id, "cell_id")),
        )

    @property
    def _sites(self) -> str:
        return (
            "SELECT site_id, region, lat, lon, router_endpoint, state, updated_at "
            f"FROM {self.ks}.sites WHERE bucket = ?"
        )

    @property
    def _cells(self) -> str:
        columns = "cell_id, site_id, region, endpoint, state, updated_at"
        return f"SELECT {columns} FROM {self.ks}.cells WHERE bucket = ?"


class CqlRouters(CqlTable):
    async def heartbeat(self, member: RouterMember, *, ttl_s: int) -> None:
        # The row expires on its own: a router that dies simply stops being listed.
        await self.run(
            f"INSERT INTO {self.ks}.routers (bucket, router_id, site_id, endpoint, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?) USING TTL ?",
            (
                BUCKET,
                member.router_id,
                member.site_id,
                member.endpoint,
                member.heartbeat_at_ms,
                check_ttl(ttl_s),
            ),
        )

    async def live_members(self) -> list[RouterMember]:
        rows = await self.read(
            f"SELECT router_id, site_id, endpoint, heartbeat_at FROM {self.ks}.routers WHERE bucket = ?",
            (BUCKET,),
        )
        return [RouterMember(r["router_id"], r["site_id"], r["endpoint"], r["heartbeat_at"]) for r in rows]

    async def leave(self, router_id: str) -> None:
        await self.run(
            f"DELETE FROM {self.ks}.routers WHERE bucket = ? AND router_id = ?",
            (BUCKET, check_id(router_id, "router_id")),
        )

    async def publish_report(self, report: RouterReport) -> None:
        # The table's default TTL ages the row out; the timestamp keeps the newest report.
        r = report
        p99 = -1.0 if r.p99_latency_ms is None else r.p99_latency_ms  # protocol v3 has no "unset"
        await self.run(
            f"INSERT INTO {self.ks}.router_reports ({_REPORT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            (
                *(BUCKET, r.router_id, r.site_id, r.reported_at_ms, r.window_ms),
                *(r.requests_per_second, r.errors_per_second, p99, dict(r.rtt_ms)),
                ts_us(r.reported_at_ms),
            ),
        )

    async def reports(self) -> list[RouterReport]:
        rows = await self.read(
            f"SELECT {_REPORT_COLUMNS} FROM {self.ks}.router_reports WHERE bucket = ?", (BUCKET,)
        )
        return [_report(row) for row in rows]


_REPORT_COLUMNS = (
    "bucket, router_id, site_id, reported_at, window_ms, requests_per_second, errors_per_second, "
    "p99_latency_ms, rtt_ms"
)


_CAPACITY_COLUMNS = (
    "cell_id, vcpus_total, vcpus_free, mem_mb_total, mem_mb_free, disk_gb_total, disk_gb_free, instances, "
    "hosts_up, updated_at, instances_by_status, networks"
)


class CqlCapacity(CqlTable):
    async def publish(self, summary: CapacitySummary) -> None:
        s = summary
        await self.run(
            f"INSERT INTO {self.ks}.capacity (bucket, {_CAPACITY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            (
                *(BUCKET, s.cell_id, s.vcpus_total, s.vcpus_free, s.mem_mb_total, s.mem_mb_free),
                *(s.disk_gb_total, s.disk_gb_free, s.instances, s.hosts_up),
                # Inserting a map replaces it whole (its tombstone carries the same timestamp - 1 us), so
                # a status that dropped to none does not linger, and an older publish cannot revive one.
                *(s.updated_at_ms, dict(s.instances_by_status), _networks_text(s)),
                ts_us(s.updated_at_ms),
            ),
        )

    async def get(self, cell_id: str) -> CapacitySummary:
        row = await self.read_one(
            f"SELECT {_CAPACITY_COLUMNS} FROM {self.ks}.capacity WHERE bucket = ? AND cell_id = ?",
            (BUCKET, check_id(cell_id, "cell_id")),
        )
        if row is None:
            raise NotFound(f"capacity of cell {cell_id} not found")
        return _capacity(row)

    async def all(self) -> list[CapacitySummary]:
        rows = await self.read(
            f"SELECT {_CAPACITY_COLUMNS} FROM {self.ks}.capacity WHERE bucket = ?", (BUCKET,)
        )
        return [_capacity(row) for row in rows]

    async def remove(self, cell_id: str, *, at_ms: int) -> None:
        await self.run(
            f"DELETE FROM {self.ks}.capacity USING TIMESTAMP ? WHERE bucket = ? AND cell_id = ?",
            (ts_us(check_ms(at_ms, "at_ms")), BUCKET, check_id(cell_id, "cell_id")),
        )


_INDEX_COLUMNS = (
    "instance_id, home_cell, owner_cell, tenant, name, flavor, status, created_at, updated_at, addresses"
)


class CqlIndex(CqlTable):
    async def put(self, entry: IndexEntry) -> None:
        e = entry
        await self.run(
            f"INSERT INTO {self.ks}.instance_index ({_INDEX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "USING TIMESTAMP ?",
            (
                *(e.instance_id, e.home_cell, e.owner_cell, e.tenant, e.name, e.flavor, e.status.value),
                *(e.created_at_ms, e.updated_at_ms, encode_addresses(e), ts_us(e.updated_at_ms)),
            ),
        )

    async def get(self, instance_id: str) -> IndexEntry:
        parse_instance_id(instance_id)
        r = await self.read_one(
            f"SELECT {_INDEX_COLUMNS} FROM {self.ks}.instance_index WHERE instance_id = ?", (instance_id,)
        )
        if r is None:
            raise NotFound(f"instance {instance_id} not found")
        return IndexEntry(
            instance_id=r["instance_id"],
            home_cell=r["home_cell"],
            owner_cell=r["owner_cell"],
            tenant=r["tenant"],
            name=r["name"],
            flavor=r["flavor"],
            status=r["status"],
            created_at_ms=r["created_at"],
            updated_at_ms=r["updated_at"],
            addresses=decode_addresses(r["addresses"]),
        )

    async def delete(self, instance_id: str, *, at_ms: int) -> None:
        parse_instance_id(instance_id)
        await self.run(
            f"DELETE FROM {self.ks}.instance_index USING TIMESTAMP ? WHERE instance_id = ?",
            (ts_us(check_ms(at_ms, "at_ms")), instance_id),
        )


class CqlStore:
    """Every aggregate of the global keyspace over one session.

    Keyspaces are parameters: the index, listing and claims may live in per-region keyspaces later
    (DESIGN "growth path"). `region` is where claims are made (default: the session's local DC, since
    the federation runs one Cassandra DC per region, named after it).
    """

    def __init__(
        self,
        session: CqlSession,
        *,
        keyspace: str,
        index_keyspace: str | None = None,
        listing_keyspace: str | None = None,
        idempotency_keyspace: str | None = None,
        region: str | None = None,
        token_key: bytes | None = None,
        scan_budget: int = DEFAULT_SCAN_BUDGET,
    ) -> None:
        self.directory = CqlDirectory(session, keyspace)
        self.routers = CqlRouters(session, keyspace)
        self.capacity = CqlCapacity(session, keyspace)
        self.index = CqlIndex(session, index_keyspace or keyspace)
        # Routers pass the federation's key (they page each other's tokens); elsewhere a process's own.
        key = token_key or new_token_key()
        self.listing = CqlListing(session, listing_keyspace or keyspace, key, scan_budget)
        self.idempotency = CqlIdempotency(
            session, idempotency_keyspace or keyspace, region or session.local_dc
        )
        self.revocations = CqlRevocations(session, keyspace)

    def use_levels(self, levels: Levels) -> CqlStore:
        """Switch every aggregate to other consistency levels (only the sync baseline does)."""
        for table in (
            self.directory,
            self.routers,
            self.capacity,
            self.index,
            self.listing,
            self.idempotency,
            self.revocations,
        ):
            table.levels = levels
        return self


def _site(r: dict[str, Any]) -> Site:
    return Site(
        r["site_id"], r["region"], r["lat"], r["lon"], r["router_endpoint"], r["state"], r["updated_at"]
    )


def _cell(r: dict[str, Any]) -> Cell:
    return Cell(r["cell_id"], r["site_id"], r["region"], r["endpoint"], r["state"], r["updated_at"])


def _capacity(r: dict[str, Any]) -> CapacitySummary:
    return CapacitySummary(
        cell_id=r["cell_id"],
        vcpus_total=r["vcpus_total"],
        vcpus_free=r["vcpus_free"],
        mem_mb_total=r["mem_mb_total"],
        mem_mb_free=r["mem_mb_free"],
        disk_gb_total=r["disk_gb_total"],
        disk_gb_free=r["disk_gb_free"],
        instances=r["instances"],
        hosts_up=r["hosts_up"],
        updated_at_ms=r["updated_at"],
        instances_by_status=dict(r["instances_by_status"] or {}),  # an empty map reads back as null
        **_networks_of(r["networks"]),
    )


def _networks_text(s: CapacitySummary) -> str:
    """A cell's networks as one text value; empty: it declares none."""
    if not s.networks:
        return ""
    return json.dumps({"default": s.default_network, "free": dict(s.networks)}, sort_keys=True)


def _networks_of(text: str | None) -> dict[str, Any]:
    """Back from `_networks_text`; CapacitySummary then checks every name and count. A value that is not
    that shape is refused rather than read as "no networks" (which would hide a cell's networks)."""
    if not text:
        return {"networks": {}, "default_network": ""}
    try:
        data = json.loads(text)
        return {"networks": dict(data["free"]), "default_network": str(data["default"])}
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("capacity networks is not {default, free}", field="networks") from None


def _report(r: dict[str, Any]) -> RouterReport:
    return RouterReport(
        router_id=r["router_id"],
        site_id=r["site_id"],
        reported_at_ms=r["reported_at"],
        window_ms=r["window_ms"],
        requests_per_second=r["requests_per_second"],
        errors_per_second=r["errors_per_second"],
        p99_latency_ms=None if r["p99_latency_ms"] < 0 else r["p99_latency_ms"],
        rtt_ms=dict(r["rtt_ms"] or {}),
    )
