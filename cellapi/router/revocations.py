"""The token revocation list a router honours (cellapi.auth.revoked), re-read each heartbeat from the
global keyspace's replica in its DC (replication.store.RevocationList)."""

from __future__ import annotations

import logging

from cellapi.auth.revoked import RevokedSet
from fedlib.errors import CellfedError
from replication.store import RevocationList

log = logging.getLogger(__name__)


class Revocations:
    """The revocation list this router honours, re-read from its DC's replica. A failed read keeps the
    last one (and says so): refusing every caller because Cassandra hiccupped would be its own outage."""

    def __init__(self, rows: RevocationList) -> None:
        self._rows, self._set = rows, RevokedSet()

    def current(self) -> RevokedSet:
        return self._set

    async def refresh(self) -> None:
        try:
            self._set = RevokedSet.of(await self._rows.all())
        except CellfedError as exc:
            log.warning("revocation list not refreshed, keeping the last one: %s", exc.message)
