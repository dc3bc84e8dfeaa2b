"""Geography for locality: great-circle distance and the RTT it implies.

Routers rank cells by measured RTT, but a router that has just started (or a cell it has never probed)
has no measurement yet. Distance is the prior: light in fibre covers about 200 km per ms, so every
100 km of path costs about 1 ms of round trip. Real cables do not follow great circles and every hop
adds switching and host-stack time, hence the stretch factor and the fixed overhead. The estimate is
meant to sit on the same ms scale as measurements so that warm and cold cells can be compared directly.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedlib.errors import InvalidArgument

# Mean Earth radius (IUGG); the spherical model errs by < 0.5%, far below the noise of RTT.
EARTH_RADIUS_KM = 6371.0088
# Two-way time per km of fibre: 2 / (~200 km per ms at ~2/3 c).
RTT_MS_PER_KM = 0.01
# Terrestrial routes run ~1.2-1.5x the great-circle length; the low end keeps estimates from
# overtaking a good measured path.
DEFAULT_PATH_STRETCH = 1.2
# Switching, serialisation and both host stacks: a same-building round trip is never free.
DEFAULT_OVERHEAD_MS = 2.0


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A position in degrees (WGS84 latitude and longitude)."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        # NaN fails both comparisons, so it is refused too.
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise InvalidArgument(f"coordinates ({self.lat}, {self.lon}) out of range", field="lat")


def distance_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance by the haversine formula (well conditioned for short distances)."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlam = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    # Rounding can push h a hair above 1 for antipodal points, where asin would raise.
    h = min(1.0, max(0.0, h))
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def estimate_rtt_ms(
    km: float, *, stretch: float = DEFAULT_PATH_STRETCH, overhead_ms: float = DEFAULT_OVERHEAD_MS
) -> float:
    """RTT a path of `km` great-circle kilometres is expected to show before anyone has measured it."""
    if not (km >= 0 and math.isfinite(km)):
        raise InvalidArgument(f"distance {km!r} must be a finite, non-negative number of km", field="km")
    if not (stretch >= 1 and math.isfinite(stretch)) or not (overhead_ms >= 0 and math.isfinite(overhead_ms)):
        raise InvalidArgument("stretch must be >= 1 and overhead_ms >= 0", field="stretch")
    return overhead_ms + km * stretch * RTT_MS_PER_KM


def estimate_rtt_between_ms(a: GeoPoint, b: GeoPoint) -> float:
    """Estimated RTT between two positions with the default stretch and overhead."""
    return estimate_rtt_ms(distance_km(a, b))
