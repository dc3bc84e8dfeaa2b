"""The inputs of cross-cell ranking (`ranking.rank`) and what "near" resolves to for a request.

Kept apart from the ranking itself so that the edge (which builds these from the directory, the
capacity summaries and the peer table) and the policy each stay a short file. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from cellapi.router.geo import GeoPoint, distance_km
from cellapi.router.peers import Health
from fedlib.errors import InvalidArgument
from replication.model import CapacitySummary, Cell, Site


def _no_groups() -> Mapping[str, frozenset[str]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Hint:
    """At most one of near_site / near_region / near_point; none means "near the user's router".

    `groups` maps a spread group to the sites already holding one of its members (from the index);
    only the entry for `spread_group` matters. stay_in_region keeps the create inside the hint's
    region: near_region itself, near_site's region, the region of the site nearest to near_point, or,
    with no near_* hint, the ingress router's region.
    """

    near_site: str | None = None
    near_region: str | None = None
    near_point: GeoPoint | None = None
    stay_in_region: bool = False
    spread_group: str | None = None
    groups: Mapping[str, frozenset[str]] = field(default_factory=_no_groups, hash=False)
    # The provider networks the create asks for (one NIC each); empty: the cell's default network.
    networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        nears = [n for n in (self.near_site, self.near_region, self.near_point) if n is not None]
        if len(nears) > 1:
            raise InvalidArgument("give at most one of near_site, near_region, near_point", field="hint")
        for name in ("near_site", "near_region", "spread_group"):
            if getattr(self, name) == "":
                raise InvalidArgument(f"{name} must not be empty when given", field=f"hint.{name}")
        frozen = {g: frozenset(sites) for g, sites in self.groups.items()}
        object.__setattr__(self, "groups", MappingProxyType(frozen))


@dataclass(frozen=True)
class Ingress:
    """The site of the router that took the request: the default reference point."""

    site_id: str
    region: str
    lat: float
    lon: float

    def __post_init__(self) -> None:
        GeoPoint(self.lat, self.lon)  # validates the coordinates

    @property
    def point(self) -> GeoPoint:
        return GeoPoint(self.lat, self.lon)

    @staticmethod
    def of(site: Site) -> Ingress:
        return Ingress(site.site_id, site.region, site.lat, site.lon)


@dataclass(frozen=True)
class Candidate:
    """A cell as the router sees it now. `rtt_ms` is this router's measured RTT EWMA (None while cold)."""

    cell: Cell
    site: Site
    capacity: CapacitySummary | None
    health: Health
    rtt_ms: float | None = None

    def __post_init__(self) -> None:
        if self.cell.site_id != self.site.site_id:
            raise InvalidArgument(
                f"cell {self.cell.cell_id} is not at site {self.site.site_id}", field="site"
            )
        if self.capacity is not None and self.capacity.cell_id != self.cell.cell_id:
            raise InvalidArgument(f"capacity summary is not for {self.cell.cell_id}", field="capacity")
        if self.rtt_ms is not None and not (self.rtt_ms >= 0 and math.isfinite(self.rtt_ms)):
            raise InvalidArgument(f"rtt_ms {self.rtt_ms!r} must be finite and >= 0", field="rtt_ms")

    @property
    def site_point(self) -> GeoPoint:
        return GeoPoint(self.site.lat, self.site.lon)


@dataclass(frozen=True)
class RankingConfig:
    max_summary_age_ms: int = 30_000  # a cell publishes every few seconds; older means it stopped
    nearly_full_fraction: float = 0.2  # below this free fraction (after the create) share shrinks
    min_share: float = 0.1  # share at 0% free: still tried now and then, never starved outright
    degraded_factor: float = 0.5

    def __post_init__(self) -> None:
        if self.max_summary_age_ms < 0:
            raise InvalidArgument("max_summary_age_ms must be >= 0", field="max_summary_age_ms")
        for name in ("nearly_full_fraction", "min_share", "degraded_factor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidArgument(f"{name} must be in [0, 1]", field=name)


@dataclass(frozen=True)
class Reference:
    """Where "near" is measured from. Measured RTTs apply only when it is this router's own site."""

    point: GeoPoint
    label: str
    region: str | None  # the region stay_in_region keeps to (None only when nothing is known)
    is_ingress: bool


def resolve_reference(hint: Hint, ingress: Ingress, candidates: Sequence[Candidate]) -> Reference:
    """Turn a hint into a reference point; unknown sites or regions are the caller's mistake."""
    if hint.near_point is not None:
        p = hint.near_point
        nearest = min(candidates, key=lambda c: distance_km(p, c.site_point), default=None)
        region = nearest.cell.region if nearest else None
        return Reference(p, f"point ({p.lat:.4f}, {p.lon:.4f})", region, is_ingress=False)
    site: Site | None = None
    if hint.near_site is not None:
        site = next((c.site for c in candidates if c.site.site_id == hint.near_site), None)
        if site is None and hint.near_site != ingress.site_id:
            raise InvalidArgument(f"no cell at site {hint.near_site!r}", field="hint.near_site")
    elif hint.near_region is not None:
        in_region = [c for c in candidates if c.cell.region == hint.near_region]
        if not in_region:
            raise InvalidArgument(f"no cell in region {hint.near_region!r}", field="hint.near_region")
        site = min(in_region, key=lambda c: (distance_km(ingress.point, c.site_point), c.site.site_id)).site
    if site is None or site.site_id == ingress.site_id:
        return Reference(ingress.point, f"ingress site {ingress.site_id}", ingress.region, is_ingress=True)
    label = f"site {site.site_id}" if hint.near_site else f"region {hint.near_region} via site {site.site_id}"
    return Reference(GeoPoint(site.lat, site.lon), label, site.region, is_ingress=False)
