"""The store layer: the thin global state routers share (directory, router membership, capacity, instance
index, tenant listing, idempotency claims) behind small interfaces, and the schema of the global and cell
keyspaces.

- `replication.store`: the interfaces (one Protocol per aggregate) and the idempotency design.
- `replication.memory`: the in-memory twin for unit tests.
- `replication.cql`: the Cassandra adapter (the only importer of the driver): `replication.cql.store`,
  `replication.cql.migrate`. Import it explicitly; this package never does, so pure code stays driver-free.
"""

from replication.memory import ManualClock, MemoryStore
from replication.model import (
    CapacitySummary,
    Cell,
    CellState,
    ClaimOutcome,
    IdempotencyRecord,
    IndexEntry,
    InstanceStatus,
    ListingEntry,
    ListPage,
    RouterMember,
    Site,
    SiteState,
)
from replication.paging import SHARDS, ListFilter, ListOrder, ListQuery
from replication.schema import KeyspacePlan, Migration, cell_migrations, global_migrations, plan_schema
from replication.store import (
    CapacityBoard,
    IdempotencyLedger,
    InstanceIndex,
    RouterMembership,
    SiteDirectory,
    Store,
    TenantListing,
)

__all__ = [
    "SHARDS",
    "CapacityBoard",
    "CapacitySummary",
    "Cell",
    "CellState",
    "ClaimOutcome",
    "IdempotencyLedger",
    "IdempotencyRecord",
    "IndexEntry",
    "InstanceIndex",
    "InstanceStatus",
    "KeyspacePlan",
    "ListFilter",
    "ListOrder",
    "ListPage",
    "ListQuery",
    "ListingEntry",
    "ManualClock",
    "MemoryStore",
    "Migration",
    "RouterMember",
    "RouterMembership",
    "Site",
    "SiteDirectory",
    "SiteState",
    "Store",
    "TenantListing",
    "cell_migrations",
    "global_migrations",
    "plan_schema",
]
