"""How `cellctl` shows instances to people (rich tables) and to scripts (JSON), as pure functions of the
protobuf replies and a `now_ms` passed in, so rendering is tested without a federation or a clock.

JSON is the canonical proto3 JSON mapping (`MessageToDict`: lowerCamelCase keys, enum names, fields at
their default omitted) because that mapping is specified and stable across releases, unlike tables.
Table cells are `Text`, never markup: display names and labels come from users."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC

from cellfed.v1 import common_pb2, compute_pb2
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.table import Table
from rich.text import Text

NONE = "-"


def to_json(message: Message) -> str:
    return json.dumps(MessageToDict(message), indent=2, sort_keys=True)


def to_json_line(message: Message) -> str:
    """One message per line (JSON Lines), for streams such as `watch`."""
    return json.dumps(MessageToDict(message), sort_keys=True, separators=(",", ":"))


def table(*headers: str) -> Table:
    """Borderless, kubectl-like columns: easy to read and to grep or cut."""
    out = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", highlight=False)
    for header in headers:
        out.add_column(header, overflow="fold")
    return out


def add_row(t: Table, *cells: str, style: str | None = None) -> None:
    t.add_row(*(Text(c) for c in cells), style=style)


def fmt_ms(ms: float) -> str:
    """A duration for people: 850ms, 4.2s, 37s, 3m04s, 2h05m, 3d04h."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 10:
        return f"{s:.1f}s"
    whole = int(s)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def fmt_duration(d: duration_pb2.Duration, *, present: bool = True) -> str:
    return fmt_ms(d.ToMilliseconds()) if present else NONE


def fmt_time(ts: timestamp_pb2.Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return NONE
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_age(ts: timestamp_pb2.Timestamp, now_ms: int) -> str:
    if not ts.seconds and not ts.nanos:
        return NONE
    return fmt_ms(max(0, now_ms - ts.ToMilliseconds()))


def status_text(inst: common_pb2.Instance) -> str:
    """The status, marked when it did not come live from the owning cell (with how old the data is)."""
    name = common_pb2.InstanceStatus.Name(inst.status) if inst.status else NONE
    if inst.stale:
        return f"{name} (stale, {fmt_ms(inst.data_age.ToMilliseconds())} old)"
    return name


def instances_table(instances: Iterable[common_pb2.Instance], now_ms: int) -> Table:
    t = table("ID", "NAME", "STATUS", "FLAVOR", "IMAGE", "SITE", "AGE")
    for inst in instances:
        cells = (inst.instance_id, inst.display_name, status_text(inst), inst.flavor, inst.image)
        add_row(
            t,
            *cells,
            inst.site or NONE,
            fmt_age(inst.create_time, now_ms),
            style="yellow" if inst.stale else None,
        )
    return t


def instance_detail(inst: common_pb2.Instance, now_ms: int) -> Table:
    """One instance as field/value pairs: everything `get` knows, including why it is in ERROR."""
    t = table("FIELD", "VALUE")
    t.show_header = False
    rows = [
        ("id", inst.instance_id),
        ("name", inst.display_name),
        ("status", status_text(inst)),
        ("fault", inst.fault),
        ("flavor", inst.flavor),
        ("image", inst.image),
        ("site", inst.site),
        ("cell", inst.cell),
        ("host", inst.host),
        ("created", f"{fmt_time(inst.create_time)} ({fmt_age(inst.create_time, now_ms)} ago)"),
        ("updated", fmt_time(inst.update_time)),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(inst.labels.items()))),
        ("version", str(inst.version) if inst.version else ""),
    ]
    rows += [(f"nic {n} ({a.network})", address_text(a)) for n, a in enumerate(inst.addresses)]
    for field, value in rows:
        if value:  # an empty field is noise here; `--output json` is the complete form
            add_row(t, field, value)
    return t


def address_text(address: common_pb2.InstanceAddress) -> str:
    return "  ".join(part for part in (address.ipv4, address.ipv6, address.mac) if part)


def unreachable_warning(cells: Sequence[str]) -> str | None:
    if not cells:
        return None
    return (
        f"warning: cells did not answer in time: {', '.join(sorted(cells))}; "
        "their instances are shown from the index, marked stale"
    )


def merge_pages(pages: Iterable[compute_pb2.ListInstancesResponse]) -> compute_pb2.ListInstancesResponse:
    """Every page as one response (for `list --all`): instances in page order, unreachable cells once."""
    out = compute_pb2.ListInstancesResponse()
    unreachable: set[str] = set()
    for page in pages:
        out.instances.extend(page.instances)
        unreachable.update(page.unreachable_cells)
    out.unreachable_cells.extend(sorted(unreachable))
    return out


def event_line(event: common_pb2.InstanceEvent) -> str:
    inst = event.instance
    line = f"{fmt_time(event.event_time)}  {status_text(inst)}  {event.reason or NONE}"
    return f"{line}  fault: {inst.fault}" if inst.fault else line


def whoami_table(me: compute_pb2.WhoAmIResponse) -> Table:
    t = table("FIELD", "VALUE")
    t.show_header = False
    for field, value in (
        ("tenant", me.tenant),
        ("roles", ", ".join(me.roles) or NONE),
        ("router site", me.router_site or NONE),
        ("router id", me.router_id or NONE),
    ):
        add_row(t, field, value)
    return t


def networks_table(response: compute_pb2.ListNetworksResponse) -> Table:
    t = table("NETWORK", "SITES", "DEFAULT AT")
    for n in response.networks:
        add_row(t, n.name, ",".join(n.sites), ",".join(n.default_at))
    return t
