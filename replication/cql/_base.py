"""What every Cassandra-backed aggregate shares: prepared statements, request-path consistency, paging."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedlib.addresses import NicAddress
from fedlib.errors import ConfigError
from replication.cql.session import CqlResult, CqlSession
from replication.model import IndexEntry, ListingEntry

# The request path never waits on the WAN (DESIGN principle 3): LOCAL_* levels only.
READ = "LOCAL_QUORUM"
WRITE = "LOCAL_QUORUM"
SERIAL = "LOCAL_SERIAL"


@dataclass(frozen=True)
class Levels:
    read: str
    write: str
    serial: str


LOCAL = Levels(READ, WRITE, SERIAL)
# The Galera-style baseline the locality benchmark compares against (`cellfed up --mode sync`): every
# global write waits for a quorum in EVERY DC, reads and claims need a global quorum. Never the default.
SYNC = Levels("QUORUM", "EACH_QUORUM", "SERIAL")
# Directory-like tables live in one partition per table (see replication.schema); bucket 0 for now.
BUCKET = 0
_PAGE_ROWS = 1000
_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def check_keyspace(keyspace: str, field: str = "keyspace") -> str:
    """Keyspace names are interpolated into CQL, so they must be plain identifiers."""
    if not _KEYSPACE.match(keyspace or ""):
        raise ConfigError(
            f"{field} {keyspace!r} must be 1-48 chars of [a-z0-9_] starting with a letter", field=field
        )
    return keyspace


def ts_us(ms: int) -> int:
    """The write timestamp of a row stamped with epoch milliseconds (Cassandra counts microseconds)."""
    return ms * 1000


class CqlTable:
    """A keyspace-bound aggregate; statements are prepared once per session (CqlSession caches them)."""

    def __init__(self, session: CqlSession, keyspace: str) -> None:
        self.session = session
        self.ks = check_keyspace(keyspace)
        self.levels = LOCAL

    async def run(
        self,
        cql: str,
        params: Sequence[Any],
        *,
        idempotent: bool = True,
        consistency: str | None = None,
        serial: str | None = None,
        fetch_size: int | None = None,
        paging_state: bytes | None = None,
    ) -> CqlResult:
        prepared = await self.session.prepare(cql)
        return await self.session.execute(
            prepared,
            params,
            consistency=consistency or self.levels.write,
            serial_consistency=serial,
            idempotent=idempotent,
            fetch_size=fetch_size,
            paging_state=paging_state,
        )

    async def read(self, cql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Every row, page by page (directory-sized results only)."""
        rows: list[dict[str, Any]] = []
        state: bytes | None = None
        while True:
            result = await self.run(
                cql, params, consistency=self.levels.read, fetch_size=_PAGE_ROWS, paging_state=state
            )
            rows.extend(result.rows)
            state = result.paging_state
            if state is None:
                return rows

    async def read_one(self, cql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        result = await self.run(cql, params, consistency=self.levels.read)
        return result.rows[0] if result.rows else None


def encode_addresses(entry: IndexEntry | ListingEntry) -> str:
    """A row's NICs as one text value, `nic;nic` (each fedlib.addresses text); empty: no NIC. Text, not a
    collection: writing a collection lays a tombstone under it each time, and these rows are rewritten
    on every change and re-assert, then read by every listing page."""
    return ";".join(a.encode() for a in entry.addresses)


def decode_addresses(value: str | None) -> tuple[NicAddress, ...]:
    return tuple(NicAddress.decode(v) for v in (value or "").split(";") if v)
