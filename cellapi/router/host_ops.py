"""The Federation API's host operations, forwarded to the cell that owns the host: resource names in,
Cell API calls out (each with the router's cell deadline), Federation views back. The cell decides
(when evacuation is allowed, where instances go); the router only names, routes and translates. Nothing
crosses sites but this one call: the cell rebuilds on its own hosts."""

from __future__ import annotations

from dataclasses import dataclass

from cellfed.v1 import cell_pb2, federation_pb2

from cellapi.router.cell_clients import CellClients
from cellapi.router.directory import Directory
from fedlib.errors import InvalidArgument, NotFound
from fedlib.names import shown
from replication.model import Cell


@dataclass(frozen=True)
class HostName:
    site: str
    cell: str
    host: str

    @property
    def name(self) -> str:
        return f"sites/{self.site}/cells/{self.cell}/hosts/{self.host}"


def parse_cell(name: str, directory: Directory, field: str = "parent") -> Cell:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "sites" or parts[2] != "cells":
        raise InvalidArgument(
            f"{field} {shown(name)} is not a cell name ('sites/<site>/cells/<cell>')", field=field
        )
    cell = directory.snapshot.cells.get(parts[3])
    if cell is None or cell.site_id != parts[1]:
        raise NotFound(f"{field} {shown(name)} names no known cell", field=field)
    return cell


def parse_host(name: str, directory: Directory) -> tuple[Cell, HostName]:
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "sites" or parts[2] != "cells" or parts[4] != "hosts" or not parts[5]:
        raise InvalidArgument(
            f"name {shown(name)} is not a host name ('sites/<site>/cells/<cell>/hosts/<host>')", field="name"
        )
    cell = parse_cell("/".join(parts[:4]), directory, field="name")
    return cell, HostName(parts[1], parts[3], parts[5])


def host_view(cell: Cell, detail: cell_pb2.HostDetail) -> federation_pb2.HostView:
    """Ages on the cell's clock (the one that stamped the times), never the router's."""
    s, observed_ms = detail.status, detail.observed_at.ToMilliseconds()
    out = federation_pb2.HostView(
        name=HostName(cell.site_id, cell.cell_id, s.host).name,
        host=s.host,
        up=s.up,
        disabled=s.disabled,
        lease_state=detail.lease_state,
        lease_generation=detail.lease_generation,
        instances=detail.instances,
        capacity=s.capacity,
    )
    if s.HasField("last_heartbeat"):
        out.heartbeat_age.FromMilliseconds(max(0, observed_ms - s.last_heartbeat.ToMilliseconds()))
    wait = detail.evacuable_at.ToMilliseconds() - observed_ms if detail.HasField("evacuable_at") else 0
    if detail.lease_state in ("FENCED", "REVOKED"):
        wait = 0
    out.evacuable_in.FromMilliseconds(max(0, wait))
    return out


class HostOps:
    def __init__(self, directory: Directory, cells: CellClients, timeout_s: float) -> None:
        self._directory, self._cells, self._timeout_s = directory, cells, timeout_s

    async def list(self, parent: str) -> federation_pb2.ListHostsResponse:
        cell = parse_cell(parent, self._directory)
        got = await self._cells.call(cell, "ListHosts", cell_pb2.ListCellHostsRequest(), self._timeout_s)
        return federation_pb2.ListHostsResponse(hosts=[host_view(cell, h) for h in got.hosts])

    async def set_disabled(
        self, request: federation_pb2.HostRequest, disabled: bool
    ) -> federation_pb2.HostView:
        cell, host = parse_host(request.name, self._directory)
        req = cell_pb2.SetHostDisabledRequest(host=host.host, disabled=disabled, reason=request.reason)
        detail = await self._cells.call(cell, "SetHostDisabled", req, self._timeout_s)
        return host_view(cell, detail)

    async def evacuate(
        self, request: federation_pb2.EvacuateHostRequest
    ) -> federation_pb2.EvacuateHostResponse:
        cell, host = parse_host(request.name, self._directory)
        if request.powered_off and not request.force:
            raise InvalidArgument("powered_off only means something with force", field="powered_off")
        req = cell_pb2.CellEvacuateHostRequest(
            host=host.host, force=request.force, powered_off=request.powered_off
        )
        got = await self._cells.call(cell, "EvacuateHost", req, self._timeout_s)
        out = federation_pb2.EvacuateHostResponse(host=host_view(cell, got.host))
        for m in got.moved:
            out.moved.add(
                instance_id=m.instance_id, to_host=m.to_host, generation=m.generation, status=m.status
            )
        out.stayed.extend(f"{s.instance_id}: {s.reason}" for s in got.stayed)
        return out
