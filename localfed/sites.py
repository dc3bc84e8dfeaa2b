"""The sites of a local federation and the RTT matrix between them (pure data and arithmetic).

Default sites are real points of presence in different regions; the RTT between two sites is estimated
from great-circle distance the way routers estimate it while their probes are cold (cellapi.router.geo),
e.g. Paris-New York ~ 72 ms. `rtt_scale` shrinks the matrix for quick tests without changing its order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cellapi.router.geo import GeoPoint, estimate_rtt_between_ms
from fedlib.errors import ConfigError


@dataclass(frozen=True)
class SiteSpec:
    site: str
    region: str  # one Cassandra DC per region
    city: str
    lat: float
    lon: float
    vcpus: int = 32  # per compute host (the libvirt test driver's own numbers are fake)
    memory_mb: int = 65_536
    disk_gb: int = 2_000
    hosts: int = 2

    @property
    def cell(self) -> str:
        return f"{self.site}-c1"


CATALOG: tuple[SiteSpec, ...] = (
    SiteSpec("par1", "eu-west", "Paris", 48.86, 2.35),
    SiteSpec("nyc1", "us-east", "New York", 40.71, -74.01),
    SiteSpec("sin1", "ap-south", "Singapore", 1.35, 103.82),
    SiteSpec("sao1", "sa-east", "São Paulo", -23.55, -46.63),
    SiteSpec("syd1", "ap-southeast", "Sydney", -33.87, 151.21),
    SiteSpec("jnb1", "af-south", "Johannesburg", -26.20, 28.05),
)


def default_sites(count: int) -> tuple[SiteSpec, ...]:
    if not 1 <= count <= len(CATALOG):
        raise ConfigError(f"--sites {count}: this machine runs 1 to {len(CATALOG)} sites", field="sites")
    return CATALOG[:count]


def for_real_guests(sites: Sequence[SiteSpec]) -> tuple[SiteSpec, ...]:
    """One real compute host per site, sized to what this machine can boot under TCG."""
    return tuple(replace(s, hosts=1, vcpus=2, memory_mb=1_024, disk_gb=20) for s in sites)


def rtt_matrix(sites: Sequence[SiteSpec], scale: float = 1.0) -> dict[tuple[str, str], float]:
    """Round trip in ms for every ordered pair of distinct sites."""
    if not 0 < scale <= 10:
        raise ConfigError(f"--rtt-scale {scale} must be in (0, 10]", field="rtt_scale")
    return {
        (a.site, b.site): round(
            scale * estimate_rtt_between_ms(GeoPoint(a.lat, a.lon), GeoPoint(b.lat, b.lon)), 1
        )
        for a in sites
        for b in sites
        if a.site != b.site
    }


def check_matrix(sites: Sequence[SiteSpec], matrix: Mapping[tuple[str, str], float]) -> None:
    """A matrix given by hand must name known sites only and cover every pair."""
    names = {s.site for s in sites}
    for a, b in matrix:
        for name in (a, b):
            if name not in names:
                raise ConfigError(
                    f"RTT matrix names unknown site {name!r} (sites: {sorted(names)})", field="rtt"
                )
    missing = [
        (a.site, b.site) for a in sites for b in sites if a.site != b.site and (a.site, b.site) not in matrix
    ]
    if missing:
        raise ConfigError(f"RTT matrix lacks {missing[:3]}", field="rtt")


def matrix_from_json(
    data: Any, sites: Sequence[SiteSpec], scale: float = 1.0
) -> dict[tuple[str, str], float]:
    """An RTT matrix given by hand, `{"par1": {"nyc1": 80, ...}, ...}` in ms: a pair given one way holds
    both ways; it must name known sites only and cover every pair (ConfigError naming what is wrong)."""
    if not isinstance(data, dict):
        raise ConfigError('RTT matrix must be a JSON object like {"par1": {"nyc1": 80}}', field="rtt_matrix")
    out: dict[tuple[str, str], float] = {}
    for a, row in data.items():
        if not isinstance(row, dict):
            raise ConfigError(f"RTT matrix row {a!r} must be an object of site: ms", field="rtt_matrix")
        for b, ms in row.items():
            if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms <= 2_000:
                raise ConfigError(
                    f"RTT {a}->{b} = {ms!r}: must be a number of ms in [0, 2000]", field="rtt_matrix"
                )
            out[(a, b)] = round(float(ms) * scale, 1)
            out.setdefault((b, a), round(float(ms) * scale, 1))
    out = {pair: ms for pair, ms in out.items() if pair[0] != pair[1]}
    check_matrix(sites, out)
    return out
