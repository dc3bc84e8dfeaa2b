"""The router's read-only status page: one self-contained HTML document (inline CSS, no scripts, nothing
fetched from elsewhere) showing every site as seen from this router: health, capacity bars per cell,
instances, heartbeat and data ages, request rates when reported, and the RTT matrix as a heatmap. A pure
function of the Federation API messages and a clock reading; every text taken from them is escaped.
Unreachable sites are drawn like the others with their last known data and its age, never left out."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

from cellfed.v1 import common_pb2, federation_pb2
from google.protobuf import duration_pb2

REFRESH_S = 5
NONE = "\u2014"  # an em dash: nothing known
_DOT = " \u00b7 "

# Health -> (label, colour). UNSPECIFIED reads as UNKNOWN: nothing was said, so nothing is known.
_HEALTH: dict[int, tuple[str, str]] = {
    common_pb2.HEALTHY: ("HEALTHY", "#2e7d32"),
    common_pb2.DEGRADED: ("DEGRADED", "#f9a825"),
    common_pb2.SUSPECT: ("SUSPECT", "#ef6c00"),
    common_pb2.OFFLINE: ("OFFLINE", "#c62828"),
    common_pb2.DRAINED: ("DRAINED", "#757575"),
    common_pb2.HEALTH_UNKNOWN: ("UNKNOWN", "#9e9e9e"),
}
_UNREACHABLE = {common_pb2.SUSPECT, common_pb2.OFFLINE, common_pb2.HEALTH_UNKNOWN}

# RTT heatmap: green at or under _RTT_LOW ms, red at or over _RTT_HIGH ms, on a log scale between.
_RTT_LOW, _RTT_HIGH = 5.0, 300.0
_RTT_UNKNOWN = "#e0e0e0"

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#212121;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#616161;margin-bottom:8px}
.warn{background:#fff3e0;border:1px solid #ef6c00;padding:6px 10px;margin:8px 0;border-radius:4px}
.sites{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:12px}
.site{background:#fff;border:1px solid #ddd;border-left:8px solid var(--c);border-radius:6px;padding:8px;
 overflow-x:auto}
.site.unreachable{background:#fbf3f0}
.site h3{margin:0;font-size:17px;display:flex;gap:8px;align-items:center}
.health{color:#fff;background:var(--c);border-radius:3px;padding:1px 6px;font-size:12px;font-weight:600}
.site .facts{color:#424242;margin:4px 0 8px;font-size:13px}
table{border-collapse:collapse}td,th{padding:3px 6px;text-align:left;font-size:13px;vertical-align:middle}
th{white-space:nowrap}.cells td{white-space:nowrap}.cells{width:100%}.cells td,.cells th{padding:3px 4px}
.cells th{border-bottom:1px solid #ddd;color:#616161;font-weight:500}
.bar{display:block;width:90px;height:10px;background:#e8f5e9;border:1px solid #bbb;
 vertical-align:middle;position:relative}
.bar>span{display:block;height:100%;background:var(--b)}
.bartext{display:block;font-size:12px;color:#424242;white-space:nowrap}
.rtt td,.rtt th{border:1px solid #ccc;text-align:center;min-width:64px}
.rtt th.from{text-align:left}.rtt .self{font-weight:700}
.legend span{display:inline-block;padding:1px 6px;margin-right:4px;border-radius:3px;color:#fff}
"""


def render(sites: federation_pb2.ListSitesResponse, rtt: federation_pb2.RttMatrix, now_ms: int) -> str:
    """The whole page for one moment: `now_ms` (wall clock) only stamps when it was built."""
    observer = sites.observed_from or "an unnamed router"
    built = datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    healthy = sum(1 for s in sites.sites if s.health == common_pb2.HEALTHY)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>cellfed status \u00b7 {escape(observer)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>cellfed federation status, observed from <span id="observer">{escape(observer)}</span></h1>',
        f'<div class="meta">{len(sites.sites)} sites, {healthy} healthy \u00b7 built {built} \u00b7 '
        f"refreshes every {REFRESH_S} s \u00b7 ages are as seen by this router</div>",
        _legend(),
    ]
    unreachable = list(sites.unreachable_sites)
    if unreachable:
        parts.append(
            f'<div class="warn" id="unreachable">Unreachable: {escape(", ".join(unreachable))}; '
            "their cards show the last known data and how old it is.</div>"
        )
    parts.append('<h2>Sites</h2><div class="sites">')
    parts.extend(_site_card(s, s.site in unreachable) for s in sites.sites)
    if not sites.sites:
        parts.append("<p>This router knows of no sites yet.</p>")
    parts.append("</div>")
    parts.append(_rtt_table(rtt, sites.observed_from))
    parts.append("</body></html>")
    return "\n".join(parts)


def health_label(health: int) -> str:
    return _HEALTH.get(health, _HEALTH[common_pb2.HEALTH_UNKNOWN])[0]


def health_colour(health: int) -> str:
    return _HEALTH.get(health, _HEALTH[common_pb2.HEALTH_UNKNOWN])[1]


def rtt_colour(ms: float) -> str:
    """Heatmap background for one RTT: green (near) through yellow to red (far); grey when unknown."""
    if ms < 0 or math.isnan(ms):
        return _RTT_UNKNOWN
    t = math.log(max(ms, _RTT_LOW) / _RTT_LOW) / math.log(_RTT_HIGH / _RTT_LOW)
    hue = round(120 * (1 - min(t, 1.0)))
    return f"hsl({hue},70%,78%)"


def fmt_age(ms: int) -> str:
    """A duration for people: 850 ms, 4.2 s, 37 s, 3 m 04 s, 2 h 05 m, 3 d 04 h."""
    if ms < 1000:
        return f"{ms} ms"
    s = ms / 1000
    if s < 10:
        return f"{s:.1f} s"
    whole = int(s)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} m"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def latency_text(us: int) -> str:
    """A latency: sub-millisecond ones keep a decimal (a local call's p99 is often 0.4 ms, not 0 ms)."""
    return f"{us / 1000:.1f} ms" if us < 10_000 else fmt_age(us // 1000)


def _age(d: duration_pb2.Duration, present: bool) -> str:
    return fmt_age(max(0, d.ToMilliseconds())) if present else NONE


def _badge(health: int) -> str:
    return f'<span class="health" style="--c:{health_colour(health)}">{health_label(health)}</span>'


def _legend() -> str:
    order = (common_pb2.HEALTHY, common_pb2.DEGRADED, common_pb2.SUSPECT, common_pb2.OFFLINE)
    spans = "".join(
        f'<span style="background:{health_colour(h)}">{health_label(h)}</span>'
        for h in (*order, common_pb2.DRAINED, common_pb2.HEALTH_UNKNOWN)
    )
    return f'<div class="legend meta">{spans}</div>'


def _site_card(site: federation_pb2.SiteView, unreachable: bool) -> str:
    unwell = unreachable or site.health in _UNREACHABLE
    name = escape(site.site)
    heartbeat = (
        f"heartbeat {_age(site.heartbeat_age, True)} ago"
        if site.HasField("heartbeat_age")
        else "no live router"
    )
    facts = [
        escape(site.region or "no region"),
        f"{site.location.latitude:.2f}, {site.location.longitude:.2f}",
        heartbeat,
        f"data as of {_age(site.data_age, site.HasField('data_age'))} ago",
    ]
    out = [
        f'<section class="site{" unreachable" if unwell else ""}" id="site-{name}" data-site="{name}" '
        f'data-health="{health_label(site.health)}" style="--c:{health_colour(site.health)}">',
        f'<h3><span class="name">{name}</span>{_badge(site.health)}</h3>',
        f'<div class="facts">{_DOT.join(facts)}</div>',
    ]
    if unwell:
        out.append('<div class="facts"><b>unreachable</b>: last known data shown with its age</div>')
    out.append(f'<div class="facts">{_traffic(site)}</div>')
    out.append(f'<div class="facts">{_routers(site)}</div>')
    out.append(_cells_table(site))
    out.append("</section>")
    return "\n".join(out)


def _traffic(site: federation_pb2.SiteView) -> str:
    if not site.HasField("traffic"):
        return "requests: never reported"
    t = site.traffic
    p99 = latency_text(t.p99_latency.ToMicroseconds()) if t.HasField("p99_latency") else "none"
    window = f" over {_age(t.window, True)}" if t.HasField("window") else ""
    age = f" \u00b7 reported {_age(t.data_age, True)} ago" if t.HasField("data_age") else ""
    return (
        f'<span class="traffic">requests {t.requests_per_second:.1f}/s \u00b7 '
        f"errors {t.errors_per_second:.1f}/s \u00b7 p99 {p99}{window}{age}</span>"
    )


def _routers(site: federation_pb2.SiteView) -> str:
    if not site.routers:
        return "routers: none live"
    each = [
        f"{escape(r.router_id)} ({escape(r.endpoint)}, heartbeat {_age(r.heartbeat_age, True)} ago, "
        f"rtt {_age(r.rtt, r.HasField('rtt'))})"
        for r in site.routers
    ]
    return "routers: " + "; ".join(each)


def _cells_table(site: federation_pb2.SiteView) -> str:
    if not site.cells:
        return '<div class="facts">no cells</div>'
    head = "".join(
        f"<th>{h}</th>" for h in ("cell", "health", "vCPU", "memory", "hosts", "instances", "as of", "rtt")
    )
    rows = [f'<table class="cells"><tr>{head}</tr>']
    for cell in site.cells:
        rows.append(_cell_row(cell))
    rows.append("</table>")
    return "\n".join(rows)


def _cell_row(cell: federation_pb2.CellView) -> str:
    drained = " (drained)" if cell.drained and cell.health != common_pb2.DRAINED else ""
    cols = [
        f'<span class="name">{escape(cell.cell)}</span>',
        _badge(cell.health) + drained,
    ]
    if cell.HasField("capacity"):
        cap = cell.capacity
        cols += [
            capacity_bar("vCPU", cap.vcpus_total, cap.vcpus_free, ""),
            capacity_bar("memory", cap.memory_mb_total / 1024, cap.memory_mb_free / 1024, " GiB"),
            f"{cap.hosts_up}/{cap.hosts_total}" if cap.hosts_total else str(cap.hosts_up),
            _instances(cell),
            f"{_age(cell.capacity_age, cell.HasField('capacity_age'))} ago",
        ]
    else:
        cols += ["no capacity published", NONE, NONE, _instances(cell), NONE]
    cols.append(_age(cell.rtt, cell.HasField("rtt")))
    tds = "".join(f"<td>{c}</td>" for c in cols)
    attrs = f'data-cell="{escape(cell.cell)}" data-health="{health_label(cell.health)}"'
    return f'<tr class="cell" {attrs}>{tds}</tr>'


def _instances(cell: federation_pb2.CellView) -> str:
    total = str(cell.capacity.instances) if cell.HasField("capacity") else NONE
    if not cell.instances_by_status:
        return total
    by = ", ".join(f"{escape(k)} {v}" for k, v in sorted(cell.instances_by_status.items()))
    return f"{total} ({by})"


def capacity_bar(what: str, total: float, free: float, unit: str) -> str:
    """A bar filled to the used share, coloured by how full it is, with used/free written beside it."""
    if total <= 0:
        return NONE
    used = min(max(total - free, 0.0), total)
    share = used / total
    colour = "#c62828" if share >= 0.9 else "#f9a825" if share >= 0.7 else "#1e88e5"
    fmt = "{:.0f}" if not unit else "{:.1f}"
    text = f"{fmt.format(used)} used / {fmt.format(max(free, 0.0))}{unit} free"
    return (
        f'<span class="bar" style="--b:{colour}" role="img" aria-label="{escape(what)}: {text}" '
        f'title="{escape(what)}: {text}"><span style="width:{share * 100:.1f}%"></span></span>'
        f'<span class="bartext">{text}</span>'
    )


def _rtt_table(m: federation_pb2.RttMatrix, observer: str) -> str:
    """Rows are the measuring router's site; a site whose row did not come is a row of "?"."""
    sites = list(m.sites)
    out = [
        "<h2>RTT between sites (ms, measured by each row's router)</h2>",
        '<table class="rtt" id="rtt"><tr><th class="from">from \\ to</th>',
        "".join(f"<th>{escape(s)}</th>" for s in sites),
        "<th>data age</th></tr>",
    ]
    rows = {r.from_site: r for r in m.rows}
    for site in sites:
        row = rows.get(site)
        values = list(row.rtt_ms) if row is not None else []
        values += [-1.0] * (len(sites) - len(values))
        mark = ' class="from self"' if site == observer else ' class="from"'
        cells = "".join(_rtt_cell(v) for v in values[: len(sites)])
        if row is None:
            note = "no report"
        elif row.HasField("data_age"):
            note = f"{_age(row.data_age, True)} ago"
        else:
            note = "this router, live" if site == observer else NONE
        out.append(f"<tr><th{mark}>{escape(site)}</th>{cells}<td>{note}</td></tr>")
    out.append("</table>")
    if not sites:
        out.append("<p>No RTTs known yet.</p>")
    else:
        out.append(
            '<div class="meta">"?" is unknown. Every row but this router\'s own is what that site\'s '
            "router last published with its heartbeat, read from this router's own datacenter; a site "
            'whose router never reported has "no report".</div>'
        )
    return "\n".join(out)


def _rtt_cell(ms: float) -> str:
    text = "?" if ms < 0 or math.isnan(ms) else f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"
    return f'<td style="background:{rtt_colour(ms)}">{text}</td>'
