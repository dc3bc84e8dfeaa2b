"""The Cassandra adapter: the only package that imports the `cassandra` driver.

`session` connects DC-aware and bridges the driver to asyncio; sibling modules (schema migration, the store)
build on it. Everything else in cellfed sees fedlib errors and plain data, never driver types.
"""

from __future__ import annotations

from replication.cql.session import CqlResult, CqlSession, connect, probe_write_all

__all__ = ["CqlResult", "CqlSession", "connect", "probe_write_all"]
