"""Cell records to and from the wire (cellfed.v1). Edge code: no decisions here."""

from __future__ import annotations

from cellfed.v1 import common_pb2

from cell.controller import CellController
from cell.lifecycle import State
from cell.records import CellInstance, nic_addresses
from fedrpc.addresses import address_to_proto

_STATUS = {s.value: getattr(common_pb2, s.value) for s in State}


def instance_to_proto(
    c: CellController, inst: CellInstance, *, include_host: bool = True
) -> common_pb2.Instance:
    spec, rec = inst.spec, inst.record
    observed = c.observed(inst)
    out = common_pb2.Instance(
        name=f"instances/{spec.instance_id}",
        instance_id=spec.instance_id,
        tenant=spec.tenant,
        display_name=spec.display_name,
        flavor=spec.flavor.name,
        image=spec.image,
        status=_STATUS[observed.status.value],
        site=c.settings.site_id,
        cell=c.settings.cell_id,
        host=(rec.host_id or "") if include_host else "",
        fault=f"{rec.fault.code}: {rec.fault.message}" if rec.fault else "",
        labels=spec.labels,
        version=rec.version,
    )
    for address in nic_addresses(inst.ports, c.settings.networks):
        out.addresses.append(address_to_proto(address))
    out.create_time.FromMilliseconds(spec.created_ms)
    out.update_time.FromMilliseconds(rec.updated_ms)
    if observed.status is State.UNKNOWN:
        out.stale = True
        out.data_age.FromMilliseconds(observed.age_ms)
    return out
