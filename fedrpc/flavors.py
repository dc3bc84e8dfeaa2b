"""The one flavor type (fedlib.flavor.Flavor) to and from the wire (cellfed.v1.Flavor): proto3 has no
"unset" for scalars, so an isolation knob left out is 0 on the wire and None in the type."""

from __future__ import annotations

from cellfed.v1 import common_pb2

from fedlib.flavor import Flavor

# The isolation knobs the wire carries (the rest of Flavor's are not sent yet).
_WIRE_KNOBS = ("cpu_shares", "cpu_quota_us", "cpu_period_us", "memory_hard_limit_mb", "disk_total_iops",
               "disk_total_bytes_per_sec")  # fmt: skip


def flavor_to_proto(flavor: Flavor) -> common_pb2.Flavor:
    knobs = {k: getattr(flavor, k) for k in _WIRE_KNOBS if getattr(flavor, k) is not None}
    return common_pb2.Flavor(
        name=flavor.name, vcpus=flavor.vcpus, memory_mb=flavor.memory_mb, disk_gb=flavor.disk_gb, **knobs
    )


def flavor_from_proto(wire: common_pb2.Flavor) -> Flavor:
    """Validates as it converts: a bad flavor is an InvalidArgument naming the field (flavor.<name>)."""
    knobs = {k: getattr(wire, k) or None for k in _WIRE_KNOBS}
    return Flavor(name=wire.name, vcpus=wire.vcpus, memory_mb=wire.memory_mb, disk_gb=wire.disk_gb, **knobs)
