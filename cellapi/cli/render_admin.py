"""How `cellctl` shows the operator views as tables: sites and their cells, placement explanations, the
RTT matrix, a drained cell. Pure functions of the Federation API replies (JSON goes through
cellapi.cli.render.to_json). Every figure that can be old is shown with its age, and a site or router that did
not answer is shown as such, never left out."""

from __future__ import annotations

from collections.abc import Mapping

from cellfed.v1 import common_pb2, federation_pb2
from rich.table import Table

from cellapi.cli.render import NONE, add_row, fmt_duration, fmt_ms, table

# Health values at which a site is shown dimmed: no new work goes there.
_UNWELL = {common_pb2.SUSPECT, common_pb2.OFFLINE, common_pb2.HEALTH_UNKNOWN}


def health_text(health: common_pb2.Health.ValueType) -> str:
    if health == common_pb2.HEALTH_UNSPECIFIED:
        return NONE
    return "UNKNOWN" if health == common_pb2.HEALTH_UNKNOWN else common_pb2.Health.Name(health)


def used_free(total: float, free: float, scale: float = 1.0) -> str:
    """ "used/free" in one unit; "-" when the cell has published no capacity yet."""
    if not total:
        return NONE
    used, left = (total - free) / scale, free / scale
    if scale == 1.0:
        return f"{used:.0f}/{left:.0f}"
    return f"{used:.1f}/{left:.1f}"


_SITES_COLUMNS = (
    "SITE",
    "REGION",
    "HEALTH",
    "HEARTBEAT",
    "CELL",
    "CELL HEALTH",
    "VCPUS used/free",
    "MEM GiB used/free",
    "DISK GB used/free",
    "HOSTS UP",
    "INSTANCES",
    "BY STATUS",
    "CAP AGE",
    "RTT",
    # The site's traffic, as its routers last reported it (cellapi.cli.render_top.traffic_cells).
    "REQ/S",
    "ERR/S",
    "P99",
    "REPORTED",
)


def sites_table(view: federation_pb2.ListSitesResponse) -> Table:
    """One row per cell (greppable), each carrying its site's region, health, heartbeat age and, last,
    its site's traffic."""
    t = table(*_SITES_COLUMNS)
    for site in view.sites:
        style = "dim" if site.health in _UNWELL else None
        head = (
            site.site,
            site.region,
            health_text(site.health),
            fmt_duration(site.heartbeat_age, present=site.HasField("heartbeat_age")),
        )
        traffic = traffic_cells(site)
        if not site.cells:
            add_row(
                t, *head, *(NONE,) * (len(_SITES_COLUMNS) - len(head) - len(traffic)), *traffic, style=style
            )
        for cell in site.cells:
            add_row(t, *head, *_cell_cells(cell), *traffic, style=style)
    return t


def _cell_cells(cell: federation_pb2.CellView) -> tuple[str, ...]:
    cap = cell.capacity
    health = health_text(cell.health) + (
        " (drained)" if cell.drained and cell.health != common_pb2.DRAINED else ""
    )
    has_cap = cell.HasField("capacity")
    return (
        cell.cell,
        health,
        used_free(cap.vcpus_total, cap.vcpus_free),
        used_free(cap.memory_mb_total, cap.memory_mb_free, 1024.0),
        used_free(cap.disk_gb_total, cap.disk_gb_free),
        str(cap.hosts_up) if has_cap else NONE,
        str(cap.instances) if has_cap else NONE,
        by_status_text(dict(cell.instances_by_status)),
        fmt_duration(cell.capacity_age, present=cell.HasField("capacity_age")),
        fmt_duration(cell.rtt, present=cell.HasField("rtt")),
    )


def sites_caption(view: federation_pb2.ListSitesResponse) -> str:
    return f"{len(view.sites)} sites, observed from {view.observed_from or 'an unnamed router'}"


def sites_warning(view: federation_pb2.ListSitesResponse) -> str | None:
    if not view.unreachable_sites:
        return None
    return (
        f"warning: unreachable sites: {', '.join(view.unreachable_sites)}; "
        "their rows show the last known data and its age"
    )


def by_status_text(counts: Mapping[str, int]) -> str:
    """ "ACTIVE=3,BUILDING=1" (no spaces: one table cell, easy to cut); "-" when none."""
    return ",".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or NONE


def fmt_latency(us: int) -> str:
    """Like fmt_ms, but sub-10 ms latencies keep a decimal: a local call's p99 is 0.4ms, not 0ms."""
    return f"{us / 1000:.1f}ms" if us < 10_000 else fmt_ms(us / 1000)


def traffic_cells(site: federation_pb2.SiteView) -> tuple[str, str, str, str]:
    """REQ/S, ERR/S, P99, REPORTED (the age of the traffic report): "-" for a site never reported."""
    if not site.HasField("traffic"):
        return NONE, NONE, NONE, "never"
    t = site.traffic
    p99 = fmt_latency(t.p99_latency.ToMicroseconds()) if t.HasField("p99_latency") else NONE
    age = f"{fmt_duration(t.data_age)} ago" if t.HasField("data_age") else NONE
    return f"{t.requests_per_second:.1f}", f"{t.errors_per_second:.1f}", p99, age


_EXPLAIN_COLUMNS = (
    "#",
    "CELL",
    "SITE",
    "REGION",
    "HEALTH",
    "RTT",
    "DISTANCE",
    "FREE VCPUS/MEM GiB",
    "SCORE",
    "SHARE",
    "ELIGIBLE",
    "REASON",
)


def explain_table(ex: federation_pb2.PlacementExplanation) -> Table:
    """The candidates in the order they would be tried; `*` marks the choice."""
    t = table(*_EXPLAIN_COLUMNS)
    for n, c in enumerate(ex.candidates, 1):
        # Unmeasured (cold, or from another ingress site) RTTs are estimates from distance: say so.
        rtt = fmt_duration(c.rtt) if c.rtt_measured else f"~{fmt_duration(c.rtt)} est."
        cap = c.capacity
        free = f"{cap.vcpus_free}/{cap.memory_mb_free / 1024:.1f}" if c.HasField("capacity") else NONE
        mark = f"{n}*" if c.cell == ex.chosen_cell else str(n)
        where = (mark, c.cell, c.site, c.region, health_text(c.health), rtt, f"{c.distance_km:,.0f} km")
        verdict = (free, f"{c.score:.3g}", f"{c.share:.2f}", "yes" if c.eligible else "no", c.reason)
        add_row(t, *where, *verdict, style=None if c.eligible else "dim")
    return t


def explain_choice(ex: federation_pb2.PlacementExplanation) -> str:
    chosen = ex.chosen_cell or "none (nothing fits)"
    return f"chosen: {chosen}" + (f" ({ex.summary})" if ex.summary else "")


def rtt_table(m: federation_pb2.RttMatrix) -> Table:
    """Rows are the measuring router's site; a site whose router never published a row shows "-"."""
    t = table("FROM \\ TO", *m.sites, "DATA AGE")
    rows = {r.from_site: r for r in m.rows}
    for site in m.sites:
        row = rows.get(site)
        if row is None:
            add_row(t, site, *(NONE,) * len(m.sites), "no report", style="dim")
            continue
        cells = [fmt_ms(v) if v >= 0 else "?" for v in row.rtt_ms]
        cells += [NONE] * (len(m.sites) - len(cells))
        # Only the answering router's own row comes without an age: it is measured live.
        age = fmt_duration(row.data_age) if row.HasField("data_age") else "live"
        add_row(t, site, *cells, age)
    return t


def cell_line(cell: federation_pb2.CellView) -> str:
    state = "drained" if cell.drained else "in placement"
    return f"{cell.name}: {state}, health {health_text(cell.health)}"


# -- compute hosts --------------------------------------------------------------------------------------
_HOST_COLUMNS = ("HOST", "UP", "STATE", "LEASE", "GENERATION", "HEARTBEAT", "EVACUABLE", "INSTANCES",
                 "VCPUS", "MEM GiB")  # fmt: skip


def _evacuable(h: federation_pb2.HostView) -> str:
    if h.lease_state == "HELD":
        return f"in {fmt_duration(h.evacuable_in)} if silent"
    wait = h.evacuable_in.ToMilliseconds()
    return "now" if wait <= 0 else f"in {fmt_duration(h.evacuable_in)}"


def hosts_table(view: federation_pb2.ListHostsResponse) -> Table:
    """One row per host: whether it reports, its lease, and when an evacuation would be allowed."""
    t = table(*_HOST_COLUMNS)
    for h in view.hosts:
        style = None if h.up else "dim"
        add_row(
            t, h.host, "yes" if h.up else "no", "disabled" if h.disabled else "enabled",
            h.lease_state or NONE, str(h.lease_generation or NONE),
            fmt_duration(h.heartbeat_age, present=h.HasField("heartbeat_age")), _evacuable(h),
            str(h.instances), str(h.capacity.vcpus_total or NONE),
            f"{h.capacity.memory_mb_total / 1024:.1f}" if h.capacity.memory_mb_total else NONE,
            style=style,
        )  # fmt: skip
    return t


def host_line(h: federation_pb2.HostView) -> str:
    state = "disabled (out of placement, keeps its instances)" if h.disabled else "enabled"
    return f"{h.name}: {state}, lease {h.lease_state}, {h.instances} instances"


def evacuation_table(ev: federation_pb2.EvacuateHostResponse) -> Table:
    t = table("INSTANCE", "TO HOST", "GENERATION", "STATUS")
    for m in ev.moved:
        add_row(
            t, m.instance_id, m.to_host or NONE, str(m.generation), common_pb2.InstanceStatus.Name(m.status)
        )
    return t


def evacuation_summary(ev: federation_pb2.EvacuateHostResponse) -> str:
    moved = sum(1 for m in ev.moved if m.to_host)
    lines = [f"{ev.host.name}: {moved} instances rebuilt elsewhere, {len(ev.moved) - moved} finished, "
             f"{len(ev.stayed)} stayed; lease {ev.host.lease_state}"]  # fmt: skip
    lines += [f"  stayed: {s}" for s in ev.stayed]
    return "\n".join(lines)
