"""Validation of Cell API requests: every field checked, errors name the field. Pure."""

from __future__ import annotations

from fedlib.catalog import check_image
from fedlib.errors import InvalidArgument
from fedlib.ids import parse_instance_id
from fedlib.limits import check_labels, check_user_data
from fedlib.names import check_display_name, check_id, check_tenant

MAX_BATCH = 500


def check_build(
    *, instance_id: str, tenant: str, display_name: str, image: str, user_data: bytes,
    labels: dict[str, str], spread_group: str,
) -> None:  # fmt: skip
    parse_instance_id(instance_id)
    check_tenant(tenant)
    check_display_name(display_name, "display_name")
    check_image(image)
    check_user_data(user_data)
    check_labels(labels)
    if spread_group:
        check_id(spread_group, "spread_group")


def check_names_this_cell(instance_id: str, cell_id: str) -> None:
    """An id names the one cell that may build it (cellapi.router.create): a replay that finds no index
    row goes to that cell alone, so no other cell may ever hold it."""
    named = parse_instance_id(instance_id).home_cell
    if named != cell_id:
        raise InvalidArgument(
            f"instance_id names cell {named}, not this cell ({cell_id}); only that cell builds it",
            field="instance_id",
        )


def check_request_claim(
    *, request_id: str, region: str, created_at_ms: int, fingerprint: str, assigned_at_ms: int,
    expires_at_ms: int,
) -> None:  # fmt: skip
    if not request_id:
        raise InvalidArgument("claim needs the request_id it claims", field="claim")
    check_id(region, "claim.region")
    times = (
        ("claim.created_at_ms", created_at_ms),
        ("claim.assigned_at_ms", assigned_at_ms),
        ("claim.expires_at_ms", expires_at_ms),
    )
    for name, value in times:
        if not 0 <= value < 1 << 48:
            raise InvalidArgument(f"{name} must be epoch milliseconds", field=name)
    if created_at_ms == 0:
        raise InvalidArgument("claim.created_at_ms is required", field="claim.created_at_ms")
    if expires_at_ms <= created_at_ms:
        raise InvalidArgument("claim.expires_at_ms must be after created_at_ms", field="claim.expires_at_ms")
    if not 1 <= len(fingerprint) <= 128:
        raise InvalidArgument("claim.fingerprint must be 1-128 chars", field="claim.fingerprint")


def check_instance_ref(instance_id: str, tenant: str) -> None:
    """Every instance call names its tenant: no empty "any tenant" path exists on the Cell API, so a
    caller holding a router's certificate still reads only the tenant it names."""
    parse_instance_id(instance_id)
    check_tenant(tenant)


def check_batch(ids: list[str]) -> None:
    if len(ids) > MAX_BATCH:
        raise InvalidArgument(
            f"instance_ids has {len(ids)} entries; the limit is {MAX_BATCH}", field="instance_ids"
        )
    for i in ids:
        parse_instance_id(i, "instance_ids")
