"""`cellctl`'s typed options into the API's request messages. Only the shape of the input is checked here
(k=v, LAT,LON, one `--near-*`); limits and names are the router's to judge, so the CLI never disagrees
with the API about what is valid."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from cellfed.v1 import common_pb2, compute_pb2, federation_pb2

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Near:
    """The placement options as typed: at most one of site, region, point."""

    site: str | None = None
    region: str | None = None
    point: str | None = None
    stay_in_region: bool = False
    spread_group: str | None = None


def new_request_id() -> str:
    # 32 hex chars: inside the API's 1-64 [A-Za-z0-9_-], and unique without coordination.
    return uuid.uuid4().hex


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        if key in labels:
            raise click.BadParameter(f"label {key!r} given twice", param_hint="--label")
        labels[key] = value
    return labels


def parse_point(text: str) -> common_pb2.GeoPoint:
    parts = text.split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not LAT,LON (e.g. 48.86,2.35)", param_hint="--near-point"
        ) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise click.BadParameter(
            f"{text!r}: latitude must be in [-90, 90], longitude in [-180, 180]", param_hint="--near-point"
        )
    return common_pb2.GeoPoint(latitude=lat, longitude=lon)


def placement_hint(near: Near) -> common_pb2.PlacementHint:
    given = [
        name
        for name, value in (
            ("--near-site", near.site),
            ("--near-region", near.region),
            ("--near-point", near.point),
        )
        if value
    ]
    if len(given) > 1:
        raise click.UsageError(
            f"give at most one of --near-site, --near-region, --near-point (got {', '.join(given)})"
        )
    hint = common_pb2.PlacementHint(stay_in_region=near.stay_in_region, spread_group=near.spread_group or "")
    if near.site:
        hint.site = near.site
    elif near.region:
        hint.region = near.region
    elif near.point:
        hint.point.CopyFrom(parse_point(near.point))
    return hint


def create_request(
    name: str,
    flavor: str,
    image: str,
    *,
    request_id: str,
    user_data: bytes = b"",
    labels: Sequence[str] = (),
    near: Near = Near(),
    networks: Sequence[str] = (),
) -> compute_pb2.CreateInstanceRequest:
    return compute_pb2.CreateInstanceRequest(
        request_id=request_id,
        display_name=name,
        flavor=flavor,
        image=image,
        user_data=user_data,
        labels=parse_labels(labels),
        placement=placement_hint(near),
        networks=networks,
    )


def explain_request(
    flavor: str, near: Near, from_site: str | None, networks: Sequence[str] = ()
) -> federation_pb2.ExplainPlacementRequest:
    return federation_pb2.ExplainPlacementRequest(
        flavor=flavor, placement=placement_hint(near), from_site=from_site or "", networks=networks
    )


def cell_name(cell: str, site: str | None) -> str:
    """A bare cell id with its --site, or a full "sites/{site}/cells/{cell}" name as is."""
    if cell.startswith("sites/"):
        return cell
    if not site:
        raise click.UsageError(f"give --site for cell {cell!r} (or the full name sites/SITE/cells/{cell})")
    return f"sites/{site}/cells/{cell}"


def near_options(fn: F) -> F:
    """The placement options shared by `create` and `explain`; read back with `near_from(kwargs)`."""
    for option in reversed(
        (
            click.option("--near-site", metavar="SITE", help="Place near this site (e.g. par1)."),
            click.option("--near-region", metavar="REGION", help="Place near this region (e.g. eu-west)."),
            click.option("--near-point", metavar="LAT,LON", help="Place near these coordinates."),
            click.option(
                "--stay-in-region", is_flag=True, help="Never spill outside the region of --near-*."
            ),
            click.option("--spread-group", metavar="GROUP", help="Spread members of GROUP across sites."),
        )
    ):
        fn = option(fn)
    return fn


def near_from(kwargs: dict[str, Any]) -> Near:
    return Near(
        site=kwargs.pop("near_site"),
        region=kwargs.pop("near_region"),
        point=kwargs.pop("near_point"),
        stay_in_region=kwargs.pop("stay_in_region"),
        spread_group=kwargs.pop("spread_group"),
    )
