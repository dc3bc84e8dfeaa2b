"""The schema as data: versioned migrations for the global keyspace and for a cell keyspace, and the
validation of a topology against the live cluster. Pure: replication.cql.migrate runs it.

Keyspace names and replication maps are parameters (DESIGN "Data placement": the index and listing may
later move to per-region keyspaces). Every statement is `IF NOT EXISTS`, and added columns are data
(`Column`) that the runner adds only when the live table lacks them (2.1 has no `ADD IF NOT EXISTS`), so
re-running a migration that died half-way is safe; the version row is written only after all its steps
and schema agreement. Only CQL shared by Cassandra 2.1 and 4.x/5.x: no materialized views, SASI, JSON,
duration or GROUP BY.

Bounds of every partition (no unbounded partitions):
- sites, cells, routers, capacity, hosts: one partition (`bucket` 0) read whole; bounded by the
  federation (or cell) size: a row per site/cell/router/host. `bucket` leaves room to split later.
- instance_index, instances: one row per partition.
- listing_gen_by_created / listing_gen_by_name (version 3; replication.listing_gens): (tenant, owner
  cell, generation): one tenant's instances in one cell, so bounded by the cell's size. A generation is
  read for one re-assert period and then dropped whole (a partition tombstone), so the row tombstones a
  reader meets are those of deletes since the last commit. listing_footprint: (tenant), a row per cell
  holding the tenant's instances. listing_generations: a row per cell. gc_grace 1 day: the listing is a
  projection the owning cells re-assert every period.
- listing_by_created / listing_by_name (versions 1-2, read by nothing since 3): (tenant, shard), SHARDS=8.
- idempotency: one claim per partition, TTL'd.
- router_reports: one partition (`bucket` 0), a row per router (bounded like `routers`), every row TTL'd
  (a day): a retired router's last report ages out by itself.
- revocations (version 4): one partition (`bucket` 0), a row per revoked token or tenant, each TTL'd to
  the end of what it covers (at most a token's longest lifetime, 7 days): bounded by the revocation rate.
- federation_secrets (version 4): a row per secret (one today).
- capacity_claims: (host_id): one row per instance on that host, plus the host's totals as static columns
  so claim + totals change in one single-partition LWT.
- instance_events: (instance_id, day): one instance's events of one day, every row TTL'd (30 days). A log,
  never a queue: nothing is deleted, rows age out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedlib.errors import ConfigError, InvalidArgument
from fedlib.names import check_id, keyspace_for_cell

_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
EVENT_TTL_S = 30 * 24 * 3600
REPORT_TTL_S = 24 * 3600  # a router report outlives its router by a day, then ages out
_LISTING_GC_GRACE_S = 24 * 3600
_TTL_GC_GRACE_S = 3 * 3600  # TTL'd rows reach every replica with their TTL; the hint window is 3 h


_COLUMN_TYPE = re.compile(r"^(int|bigint|double|text|map<text, (int|double)>)$")


@dataclass(frozen=True)
class Column:
    """A column a migration adds to an existing table (ALTER TABLE ... ADD), skipped when present."""

    table: str
    name: str
    cql_type: str

    def __post_init__(self) -> None:
        for what in (self.table, self.name):
            if not re.match(r"^[a-z][a-z0-9_]{0,47}$", what):
                raise InvalidArgument(f"{what!r} is not a plain CQL identifier", field="column")
        if not _COLUMN_TYPE.match(self.cql_type):
            raise InvalidArgument(f"column type {self.cql_type!r} is not one we use", field="cql_type")

    def statement(self, ks: str) -> str:
        return f"ALTER TABLE {ks}.{self.table} ADD {self.name} {self.cql_type}"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]
    # True when the statements touch different tables, so they may run concurrently (each DDL costs the
    # driver ~1-2 s of schema-agreement wait; one at a time a fresh keyspace takes ~15 s instead of ~3 s).
    # Off by default: a later migration altering a table it just created must run in order.
    independent: bool = False
    columns: tuple[Column, ...] = ()  # added after the statements, one at a time
    copies: tuple[str, ...] = ()  # named data steps the runner performs after the DDL (replication.cql)


@dataclass(frozen=True)
class KeyspacePlan:
    """One keyspace to bring to its latest version with this replication ({dc: rf})."""

    keyspace: str
    replication: dict[str, int]
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        return self.migrations[-1].version


def replication_cql(replication: Mapping[str, int]) -> str:
    dcs = ", ".join(f"'{dc}': {rf}" for dc, rf in sorted(replication.items()))
    return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"


def create_keyspace(keyspace: str, replication: Mapping[str, int]) -> str:
    return f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication_cql(replication)}"


def alter_keyspace(keyspace: str, replication: Mapping[str, int]) -> str:
    return f"ALTER KEYSPACE {keyspace} WITH replication = {replication_cql(replication)}"


def _version_table(ks: str) -> str:
    # One partition ('schema'), one row per applied version, newest first.
    return (
        f"CREATE TABLE IF NOT EXISTS {ks}.schema_version (scope text, version int, description text, "
        "applied_at bigint, PRIMARY KEY ((scope), version)) WITH CLUSTERING ORDER BY (version DESC)"
    )


def global_migrations(ks: str) -> tuple[Migration, ...]:
    listing_columns = "owner_cell text, site_id text, flavor text, status text, updated_at bigint"
    return (
        Migration(
            1,
            "directory, routers, capacity, instance index, tenant listing, idempotency",
            (
                _version_table(ks),
                f"CREATE TABLE IF NOT EXISTS {ks}.sites (bucket int, site_id text, region text, lat double, "
                "lon double, router_endpoint text, state text, updated_at bigint, "
                "PRIMARY KEY ((bucket), site_id))",
                f"CREATE TABLE IF NOT EXISTS {ks}.cells (bucket int, cell_id text, site_id text, "
                "region text, endpoint text, state text, updated_at bigint, PRIMARY KEY ((bucket), cell_id))",
                f"CREATE TABLE IF NOT EXISTS {ks}.routers (bucket int, router_id text, site_id text, "
                "endpoint text, heartbeat_at bigint, PRIMARY KEY ((bucket), router_id)) "
                f"WITH gc_grace_seconds = {_TTL_GC_GRACE_S}",
                f"CREATE TABLE IF NOT EXISTS {ks}.capacity (bucket int, cell_id text, vcpus_total int, "
                "vcpus_free int, mem_mb_total bigint, mem_mb_free bigint, disk_gb_total bigint, "
                "disk_gb_free bigint, instances int, hosts_up int, updated_at bigint, "
                "PRIMARY KEY ((bucket), cell_id))",
                f"CREATE TABLE IF NOT EXISTS {ks}.instance_index (instance_id text PRIMARY KEY, "
                "home_cell text, owner_cell text, tenant text, name text, flavor text, status text, "
                "created_at bigint, updated_at bigint)",
                f"CREATE TABLE IF NOT EXISTS {ks}.listing_by_created (tenant text, shard int, "
                f"created_at bigint, instance_id text, name text, {listing_columns}, "
                "PRIMARY KEY ((tenant, shard), created_at, instance_id)) "
                f"WITH gc_grace_seconds = {_LISTING_GC_GRACE_S}",
                f"CREATE TABLE IF NOT EXISTS {ks}.listing_by_name (tenant text, shard int, name text, "
                f"instance_id text, created_at bigint, {listing_columns}, "
                "PRIMARY KEY ((tenant, shard), name, instance_id)) "
                f"WITH gc_grace_seconds = {_LISTING_GC_GRACE_S}",
                # region is in the partition key: a claim's Paxos runs in one DC only (replication.store).
                f"CREATE TABLE IF NOT EXISTS {ks}.idempotency (tenant text, request_id text, region text, "
                "instance_id text, fingerprint text, created_at bigint, "
                "PRIMARY KEY ((tenant, request_id, region))) "
                f"WITH gc_grace_seconds = {_TTL_GC_GRACE_S}",
            ),
            independent=True,
        ),
        Migration(
            2,
            "instances by status with capacity; router traffic and RTT reports",
            (
                # Its own table, not columns of `routers`: a heartbeat row expires seconds after its router
                # dies, and the view must go on showing that router's last traffic and RTTs with their age.
                f"CREATE TABLE IF NOT EXISTS {ks}.router_reports (bucket int, router_id text, "
                "site_id text, reported_at bigint, window_ms bigint, requests_per_second double, "
                "errors_per_second double, p99_latency_ms double, rtt_ms map<text, double>, "
                "PRIMARY KEY ((bucket), router_id)) "
                f"WITH default_time_to_live = {REPORT_TTL_S} AND gc_grace_seconds = {_TTL_GC_GRACE_S}",
            ),
            columns=(Column("capacity", "instances_by_status", "map<text, int>"),),
        ),
        Migration(
            3,
            "tenant listing in generations of the owning cell (replication.listing_gens)",
            (
                # The tenant's footprint: one row per cell holding its instances, naming the generation
                # readers read. Written USING TIMESTAMP of the generation (newest wins).
                f"CREATE TABLE IF NOT EXISTS {ks}.listing_footprint (tenant text, cell_id text, gen bigint, "
                "PRIMARY KEY ((tenant), cell_id)) "
                f"WITH gc_grace_seconds = {_LISTING_GC_GRACE_S}",
                f"CREATE TABLE IF NOT EXISTS {ks}.listing_generations (cell_id text PRIMARY KEY, "
                "current bigint, opening bigint, retired bigint)",
                f"CREATE TABLE IF NOT EXISTS {ks}.listing_gen_by_created (tenant text, cell_id text, "
                f"gen bigint, created_at bigint, instance_id text, name text, {listing_columns}, "
                "PRIMARY KEY ((tenant, cell_id, gen), created_at, instance_id)) "
                f"WITH gc_grace_seconds = {_LISTING_GC_GRACE_S}",
                f"CREATE TABLE IF NOT EXISTS {ks}.listing_gen_by_name (tenant text, cell_id text, "
                f"gen bigint, name text, instance_id text, created_at bigint, {listing_columns}, "
                "PRIMARY KEY ((tenant, cell_id, gen), name, instance_id)) "
                f"WITH gc_grace_seconds = {_LISTING_GC_GRACE_S}",
            ),
            independent=True,
            copies=(LISTING_COPY,),
        ),
        Migration(
            4,
            "token revocations; federation secrets (the listing's page-token key)",
            (
                # One small partition every router reads whole each heartbeat; each row's own TTL ends
                # when no token it covers can still be valid (replication.model.Revocation).
                f"CREATE TABLE IF NOT EXISTS {ks}.revocations (bucket int, kind text, key text, "
                "issued_before bigint, revoked_at bigint, until bigint, reason text, "
                "PRIMARY KEY ((bucket), kind, key)) "
                f"WITH gc_grace_seconds = {_TTL_GC_GRACE_S}",
                # Made once by a cross-DC LWT at schema apply (replication.cql.federation_rows).
                f"CREATE TABLE IF NOT EXISTS {ks}.federation_secrets (name text PRIMARY KEY, value blob)",
            ),
            independent=True,
        ),
        Migration(
            5,
            "provider networks in capacity summaries; instances' addresses in the index and the listing",
            (),
            # Text, not collections: a collection written whole lays a tombstone under it every time, and
            # these rows are rewritten on every change (capacity every 2 s). One column per table, so
            # the four ALTERs run at once.
            columns=(
                # {"default": name, "free": {name: free addresses}} (replication.cql.store)
                Column("capacity", "networks", "text"),
                # Each NIC of an instance (fedlib.addresses): a cut-off cell's guests still show their
                # addresses, and a listing can be filtered by address.
                Column("instance_index", "addresses", "text"),
                Column("listing_gen_by_created", "addresses", "text"),
                Column("listing_gen_by_name", "addresses", "text"),
            ),
            independent=True,
        ),
    )


# Version 3's data step: the old sharded listing's rows, copied into each owner cell's first generation
# (where a cell that has not yet committed one writes), with their footprint. Idempotent: same rows, same
# timestamps. The old tables are left in place (read by nothing; drop them by hand once every router runs
# version 3).
LISTING_COPY = "listing_v2_to_generations"


def cell_migrations(ks: str) -> tuple[Migration, ...]:
    return (
        Migration(
            1,
            "instances, hosts, capacity claims, instance event log",
            (
                _version_table(ks),
                f"CREATE TABLE IF NOT EXISTS {ks}.instances (instance_id text PRIMARY KEY, tenant text, "
                "name text, flavor text, image text, host_id text, status text, power_state text, "
                "task text, fault text, spec text, labels map<text, text>, created_at bigint, "
                "updated_at bigint, version bigint)",
                f"CREATE TABLE IF NOT EXISTS {ks}.hosts (bucket int, host_id text, vcpus int, mem_mb bigint, "
                "disk_gb bigint, state text, agent_endpoint text, heartbeat_at bigint, updated_at bigint, "
                "PRIMARY KEY ((bucket), host_id))",
                f"CREATE TABLE IF NOT EXISTS {ks}.capacity_claims (host_id text, instance_id text, "
                "vcpus int, mem_mb bigint, disk_gb bigint, claimed_at bigint, used_vcpus int static, "
                "used_mem_mb bigint static, used_disk_gb bigint static, version bigint static, "
                "PRIMARY KEY ((host_id), instance_id))",
                f"CREATE TABLE IF NOT EXISTS {ks}.instance_events (instance_id text, day int, at bigint, "
                "event_id timeuuid, kind text, status text, request_id text, detail text, "
                "PRIMARY KEY ((instance_id, day), at, event_id)) "
                "WITH CLUSTERING ORDER BY (at DESC, event_id DESC) "
                f"AND default_time_to_live = {EVENT_TTL_S} AND gc_grace_seconds = {_LISTING_GC_GRACE_S}",
            ),
            independent=True,
        ),
        Migration(
            2,
            "high-water marks of the cell's sequences (its MACs: never handed out twice)",
            (f"CREATE TABLE IF NOT EXISTS {ks}.high_water (name text PRIMARY KEY, value bigint)",),
        ),
    )


def plan_schema(
    *,
    global_keyspace: str,
    dcs: Mapping[str, int],
    cells: Sequence[tuple[str, str]],
    known_dcs: Mapping[str, int],
) -> tuple[KeyspacePlan, ...]:
    """Validate the topology against the live cluster (ConfigError naming the setting) and return what
    to apply: the global keyspace over `dcs`, each cell's keyspace only in its own DC at that DC's rf."""
    _check_keyspace(global_keyspace)
    _check_dcs(dcs, known_dcs)
    plans = [KeyspacePlan(global_keyspace, dict(dcs), global_migrations(global_keyspace))]
    seen: set[str] = set()
    for cell_id, dc in cells:
        try:
            keyspace = keyspace_for_cell(check_id(cell_id, "cell_id"))
        except InvalidArgument as exc:
            raise ConfigError(f"cells: {exc.message}", field="cells") from None
        if cell_id in seen or keyspace == global_keyspace:
            raise ConfigError(f"cells: cell {cell_id!r} is listed twice or clashes with the global keyspace")
        seen.add(cell_id)
        if dc not in dcs:
            raise ConfigError(
                f"cells[{cell_id}]: DC {dc!r} is not one of the global keyspace's dcs {sorted(dcs)}",
                field=f"cells.{cell_id}",
            )
        plans.append(KeyspacePlan(keyspace, {dc: dcs[dc]}, cell_migrations(keyspace)))
    return tuple(plans)


def _check_keyspace(keyspace: str) -> None:
    if not _KEYSPACE.match(keyspace or ""):
        raise ConfigError(
            f"global_keyspace {keyspace!r} must be 1-48 chars of [a-z0-9_] starting with a letter",
            field="global_keyspace",
        )


def _check_dcs(dcs: Mapping[str, int], known_dcs: Mapping[str, int]) -> None:
    if not dcs:
        raise ConfigError("dcs: no datacenter given for the global keyspace", field="dcs")
    for dc, rf in sorted(dcs.items()):
        if not _DC.match(dc):
            raise ConfigError(f"dcs: {dc!r} is not a datacenter name", field="dcs")
        if dc not in known_dcs:
            raise ConfigError(
                f"dcs[{dc}]: the cluster has no datacenter {dc!r} (it has {sorted(known_dcs)})",
                field=f"dcs.{dc}",
            )
        if isinstance(rf, bool) or not isinstance(rf, int) or rf < 1:
            raise ConfigError(f"dcs[{dc}]: replication factor {rf!r} must be >= 1", field=f"dcs.{dc}")
        if rf > known_dcs[dc]:
            raise ConfigError(
                f"dcs[{dc}]: replication factor {rf} exceeds the {known_dcs[dc]} node(s) in {dc!r}; "
                "writes at LOCAL_QUORUM would fail",
                field=f"dcs.{dc}",
            )
