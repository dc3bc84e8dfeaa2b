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
    # The id names the router's first-choice cell; after a spill another cell builds it, and the index
    # records the real owner (cellapi.router.owners), so any well-formed id is accepted here.
    parse_instance_id(instance_id)
    check_tenant(tenant)
    check_display_name(display_name, "display_name")
    check_image(image)
    check_user_data(user_data)
    check_labels(labels)
    if spread_group:
        check_id(spread_group, "spread_group")


def check_instance_ref(instance_id: str, tenant: str, *, tenant_required: bool) -> None:
    parse_instance_id(instance_id)
    if tenant or tenant_required:
        check_tenant(tenant)


def check_batch(ids: list[str]) -> None:
    if len(ids) > MAX_BATCH:
        raise InvalidArgument(
            f"instance_ids has {len(ids)} entries; the limit is {MAX_BATCH}", field="instance_ids"
        )
    for i in ids:
        parse_instance_id(i, "instance_ids")
