"""What a router knows of the federation: sites, cells, capacity summaries, live peer routers and every
router's last report (traffic, RTTs), re-read from the global keyspace in its own DC (LOCAL_QUORUM) every
few seconds, so cells and routers that come or go are picked up without restarts. It also announces this
router: its site row and an expiring heartbeat (TTL), so a dead router disappears on its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cellapi.router.settings import RouterSettings
from replication.model import CapacitySummary, Cell, RouterMember, RouterReport, Site, SiteState
from replication.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    sites: dict[str, Site] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)
    capacity: dict[str, CapacitySummary] = field(default_factory=dict)
    routers: dict[str, RouterMember] = field(default_factory=dict)
    reports: dict[str, RouterReport] = field(default_factory=dict)  # by router id, live or not
    taken_at_ms: int = 0

    def cell_site(self, cell_id: str) -> str:
        cell = self.cells.get(cell_id)
        return cell.site_id if cell else "unknown"


class Directory:
    def __init__(self, store: Store, settings: RouterSettings, clock_ms: Callable[[], int]) -> None:
        self._store, self._settings, self._now = store, settings, clock_ms
        self.snapshot = Snapshot()
        self.advertise = settings.advertise  # set once the server's port is known when listening on :0

    async def refresh(self) -> None:
        """Keeps the previous snapshot when the store does not answer: stale beats empty."""
        s = self._store
        sites, cells, capacity, routers, reports = await asyncio.wait_for(
            asyncio.gather(
                s.directory.list_sites(),
                s.directory.list_cells(),
                s.capacity.all(),
                s.routers.live_members(),
                s.routers.reports(),
            ),
            timeout=self._settings.refresh_s * 2,
        )
        self.snapshot = Snapshot(
            sites={x.site_id: x for x in sites},
            cells={x.cell_id: x for x in cells},
            capacity={x.cell_id: x for x in capacity},
            routers={x.router_id: x for x in routers},
            reports={x.router_id: x for x in reports},
            taken_at_ms=self._now(),
        )

    async def announce(self) -> None:
        st, now = self._settings, self._now()
        await self._store.directory.put_site(
            Site(st.site_id, st.region, st.lat, st.lon, self.advertise, SiteState.ENABLED, now)
        )
        # Three missed heartbeats and the row expires by itself: no one has to declare a router dead.
        ttl = max(2, int(st.heartbeat_s * 3) + 1)
        await self._store.routers.heartbeat(
            RouterMember(st.router_id, st.site_id, self.advertise, now), ttl_s=ttl
        )

    async def leave(self) -> None:
        await self._store.routers.leave(self._settings.router_id)
