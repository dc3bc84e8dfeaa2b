"""Site-level views of the federation for `cellctl top` (one line per site: health, ages, capacity,
instances by state, traffic). Pure functions of the Federation API
reply and the times passed in; a site that is unreachable is shown dimmed and says so, with the age of
what is known of it, never dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from cellfed.v1 import common_pb2, federation_pb2
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cellapi.cli.render import NONE, add_row, fmt_duration, fmt_ms, table
from cellapi.cli.render_admin import by_status_text, health_text, traffic_cells, used_free

_UNWELL = {common_pb2.SUSPECT, common_pb2.OFFLINE, common_pb2.HEALTH_UNKNOWN}


def _unreachable(site: federation_pb2.SiteView, view: federation_pb2.ListSitesResponse) -> bool:
    return site.site in view.unreachable_sites or site.health in _UNWELL


@dataclass(frozen=True)
class SiteTotals:
    vcpus_total: int
    vcpus_free: int
    mem_mb_total: int
    mem_mb_free: int
    instances: int
    by_status: Counter[str]
    capacity_age_ms: int | None  # of the oldest cell summary: every figure is at least this fresh


def site_totals(site: federation_pb2.SiteView) -> SiteTotals:
    cells = [c for c in site.cells if c.HasField("capacity")]
    by_status: Counter[str] = Counter()
    for c in site.cells:
        by_status.update(dict(c.instances_by_status))
    ages = [c.capacity_age.ToMilliseconds() for c in cells if c.HasField("capacity_age")]
    return SiteTotals(
        vcpus_total=sum(c.capacity.vcpus_total for c in cells),
        vcpus_free=sum(c.capacity.vcpus_free for c in cells),
        mem_mb_total=sum(c.capacity.memory_mb_total for c in cells),
        mem_mb_free=sum(c.capacity.memory_mb_free for c in cells),
        instances=sum(c.capacity.instances for c in cells),
        by_status=by_status,
        capacity_age_ms=max(ages) if ages else None,
    )


_TOP_COLUMNS = (
    "SITE", "HEALTH", "HEARTBEAT", "DATA AGE", "VCPUS used/free", "MEM GiB used/free", "INSTANCES",
    "BY STATE", "REQ/S", "ERR/S", "P99", "REPORTED",
)  # fmt: skip


def top_table(view: federation_pb2.ListSitesResponse) -> Table:
    t = table(*_TOP_COLUMNS)
    for site in view.sites:
        s = site_totals(site)
        gone = _unreachable(site, view)
        heartbeat = fmt_duration(site.heartbeat_age, present=site.HasField("heartbeat_age"))
        health = health_text(site.health) + (" (unreachable)" if gone else "")
        add_row(
            t,
            site.site,
            health,
            heartbeat if site.HasField("heartbeat_age") else "none live",
            fmt_ms(s.capacity_age_ms) if s.capacity_age_ms is not None else NONE,
            used_free(s.vcpus_total, s.vcpus_free),
            used_free(s.mem_mb_total, s.mem_mb_free, 1024.0),
            str(s.instances) if s.vcpus_total else NONE,
            by_status_text(s.by_status),
            *traffic_cells(site),
            style="dim" if gone else None,
        )
    return t


@dataclass(frozen=True)
class Frame:
    """What one refresh of `cellctl top` knows: the newest view (if any came) and how the last try went."""

    view: federation_pb2.ListSitesResponse | None
    view_at_ms: int | None  # when that view arrived
    now_ms: int
    interval_s: float
    problem: str | None = None  # the last refresh failed: why


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S UTC")


def top_header(frame: Frame) -> Text:
    every = f"refresh every {frame.interval_s:g}s"
    if frame.view is None or frame.view_at_ms is None:
        head = f"cellctl top: no view yet ({every})"
    else:
        v = frame.view
        healthy = sum(1 for s in v.sites if s.health == common_pb2.HEALTHY)
        head = (
            f"cellctl top: {len(v.sites)} sites, {healthy} healthy, observed from "
            f"{v.observed_from or 'an unnamed router'} at {_clock(frame.view_at_ms)} ({every})"
        )
    text = Text(head, style="bold")
    if frame.view is not None and frame.view.unreachable_sites:
        text.append(f"\nunreachable: {', '.join(frame.view.unreachable_sites)} (last known data, aged)")
    if frame.problem:
        stale = (
            ""
            if frame.view_at_ms is None
            else f"; showing the view from {fmt_ms(frame.now_ms - frame.view_at_ms)} ago"
        )
        text.append(
            f"\nthe router did not answer at {_clock(frame.now_ms)}: {frame.problem}{stale}", style="red"
        )
    return text


def top_frame(frame: Frame) -> RenderableType:
    if frame.view is None:
        return top_header(frame)
    return Group(top_header(frame), top_table(frame.view))
