"""Validation of public API requests at the router: every field, errors naming it. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cellfed.v1 import common_pb2, compute_pb2

from fedlib.addresses import parse_ip
from fedlib.catalog import check_image, resolve_flavor
from fedlib.errors import InvalidArgument
from fedlib.flavor import Flavor
from fedlib.ids import InstanceId, parse_instance_id
from fedlib.limits import check_labels, check_user_data
from fedlib.names import check_display_name, check_id, shown
from fedlib.networks import check_requested
from replication.model import InstanceStatus, check_request_id
from replication.paging import MAX_PAGE_SIZE, ListFilter, ListOrder

DEFAULT_PAGE_SIZE = 50
LIST_PAGE_MAX = 500


def instance_name(name: str, field: str = "name") -> InstanceId:
    """'instances/{id}' -> the parsed id; malformed names are refused before any lookup."""
    prefix, sep, rest = (name or "").partition("/")
    if prefix != "instances" or not sep:
        raise InvalidArgument(f"{field} {name!r} must look like 'instances/<instance id>'", field=field)
    return parse_instance_id(rest, field)


def check_create(request: compute_pb2.CreateInstanceRequest) -> Flavor:
    check_request_id(request.request_id)
    check_display_name(request.display_name, "display_name")
    flavor = resolve_flavor(request.flavor)
    check_image(request.image)
    check_user_data(request.user_data)
    check_labels(request.labels)
    check_placement(request.placement)
    check_requested(list(request.networks))
    return flavor


def check_placement(hint: common_pb2.PlacementHint) -> None:
    """A placement hint as create checks it; ExplainPlacement checks the same, so it never explains a
    request create would refuse."""
    if hint.WhichOneof("near") == "site":
        check_id(hint.site, "placement.site")
    if hint.WhichOneof("near") == "region":
        check_id(hint.region, "placement.region")
    point = hint.point
    if hint.WhichOneof("near") == "point" and not (
        -90 <= point.latitude <= 90 and -180 <= point.longitude <= 180
    ):
        raise InvalidArgument("placement.point is not a latitude/longitude", field="placement.point")
    if hint.spread_group:
        check_id(hint.spread_group, "placement.spread_group")


def fingerprint(request: compute_pb2.CreateInstanceRequest) -> str:
    """What a retry must repeat exactly; the request id itself is the key, not part of the print."""
    copy = compute_pb2.CreateInstanceRequest()
    copy.CopyFrom(request)
    copy.request_id = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def list_order(order_by: str) -> ListOrder:
    text = " ".join((order_by or "create_time").split())
    try:
        return ListOrder(text)
    except ValueError:
        known = ", ".join(o.value for o in ListOrder)
        raise InvalidArgument(f"order_by {order_by!r} is not one of: {known}", field="order_by") from None


def list_filter(text: str) -> ListFilter:
    """AIP-160 subset: a conjunction of `status=ACTIVE`, `site=par1`, `cell=par1-c1`, `name:web-*`,
    `address=203.0.113.7` (an instance with a NIC on that IPv4 or IPv6 address)."""
    values: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in (text or "").replace(" AND ", " ").split())):
        key, op, value = _split_term(term)
        if key in values:
            raise InvalidArgument(f"filter names {key!r} twice", field="filter")
        if (key == "name") != (op == ":"):
            raise InvalidArgument(f"filter term {term!r}: use name:prefix* and key=value", field="filter")
        values[key] = value
    status = values.get("status")
    # UNKNOWN is derived at read time from the age of the data, so no stored row can match it.
    if status is not None and (status not in InstanceStatus.__members__ or status == InstanceStatus.UNKNOWN):
        raise InvalidArgument(f"filter status {status!r} is not an instance status", field="filter")
    prefix = values.get("name")
    return ListFilter(
        status=InstanceStatus(status) if status else None,
        site_id=values.get("site"),
        cell=values.get("cell"),
        name_prefix=prefix.rstrip("*") if prefix else None,
        address=parse_ip(values["address"], "filter address") if "address" in values else None,
    )


def _split_term(term: str) -> tuple[str, str, str]:
    for op in ("=", ":"):
        key, sep, value = term.partition(op)
        if sep and key in ("status", "site", "cell", "name", "address") and value:
            return key, op, value
    raise InvalidArgument(
        f"filter term {shown(term)} is not supported (status=, site=, cell=, name:prefix*, address=)",
        field="filter",
    )


def page_size(requested: int) -> int:
    if requested < 0 or requested > min(LIST_PAGE_MAX, MAX_PAGE_SIZE):
        raise InvalidArgument(f"page_size must be 0-{LIST_PAGE_MAX}", field="page_size")
    return requested or DEFAULT_PAGE_SIZE


Counter = Callable[[str, str, float], None]  # (method, code, seconds): the servicers' request counter
