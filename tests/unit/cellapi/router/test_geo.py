"""Great-circle distance and the RTT prior: known city pairs plus metric properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellapi.router.geo import (
    DEFAULT_OVERHEAD_MS,
    EARTH_RADIUS_KM,
    GeoPoint,
    distance_km,
    estimate_rtt_between_ms,
    estimate_rtt_ms,
)
from fedlib.errors import InvalidArgument

LONDON = GeoPoint(51.5074, -0.1278)
PARIS = GeoPoint(48.8566, 2.3522)
NEW_YORK = GeoPoint(40.7128, -74.0060)
SYDNEY = GeoPoint(-33.8688, 151.2093)

points = st.builds(
    GeoPoint,
    lat=st.floats(-90, 90, allow_nan=False),
    lon=st.floats(-180, 180, allow_nan=False),
)


@pytest.mark.parametrize(
    ("a", "b", "km"),
    [
        (LONDON, PARIS, 343.5),
        (LONDON, NEW_YORK, 5570.2),
        (NEW_YORK, SYDNEY, 15988.8),
        (GeoPoint(0, 0), GeoPoint(0, 180), math.pi * EARTH_RADIUS_KM),
        (GeoPoint(90, 0), GeoPoint(-90, 0), math.pi * EARTH_RADIUS_KM),
        (GeoPoint(0, 179.5), GeoPoint(0, -179.5), 111.2),  # across the antimeridian, not the long way
    ],
)
def test_known_distances(a: GeoPoint, b: GeoPoint, km: float) -> None:
    assert distance_km(a, b) == pytest.approx(km, rel=0.005)


def test_same_point_is_zero() -> None:
    assert distance_km(PARIS, PARIS) == 0.0


@pytest.mark.parametrize(
    ("km", "rtt"),
    [(0.0, DEFAULT_OVERHEAD_MS), (100.0, 3.2), (1000.0, 14.0), (5570.0, 68.84)],
)
def test_rtt_estimate_table(km: float, rtt: float) -> None:
    assert estimate_rtt_ms(km) == pytest.approx(rtt)


def test_rtt_estimate_knobs() -> None:
    assert estimate_rtt_ms(100.0, stretch=1.0, overhead_ms=0.0) == pytest.approx(1.0)  # 1 ms per 100 km
    assert estimate_rtt_between_ms(LONDON, PARIS) == pytest.approx(
        estimate_rtt_ms(distance_km(LONDON, PARIS))
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"km": -1.0},
        {"km": math.nan},
        {"km": math.inf},
        {"km": 1.0, "stretch": 0.5},
        {"km": 1.0, "overhead_ms": -1},
    ],
)
def test_rtt_estimate_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument):
        estimate_rtt_ms(**kwargs)


@pytest.mark.parametrize(
    ("lat", "lon"), [(91, 0), (-90.5, 0), (0, 181), (0, -180.1), (math.nan, 0), (0, math.nan)]
)
def test_geopoint_refuses_out_of_range(lat: float, lon: float) -> None:
    with pytest.raises(InvalidArgument):
        GeoPoint(lat, lon)


@given(points, points)
def test_distance_is_symmetric_and_bounded(a: GeoPoint, b: GeoPoint) -> None:
    d = distance_km(a, b)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_KM + 1e-6
    assert d == pytest.approx(distance_km(b, a), abs=1e-6)


@given(points, points, points)
def test_triangle_inequality(a: GeoPoint, b: GeoPoint, c: GeoPoint) -> None:
    assert distance_km(a, c) <= distance_km(a, b) + distance_km(b, c) + 1e-6


@given(st.floats(0, 40_000), st.floats(0, 40_000))
def test_rtt_estimate_is_monotone_in_distance(x: float, y: float) -> None:
    lo, hi = sorted((x, y))
    assert DEFAULT_OVERHEAD_MS <= estimate_rtt_ms(lo) <= estimate_rtt_ms(hi)
