"""Cross-cell ranking: worked examples over a five-site federation, then properties over random ones."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellapi.router.geo import GeoPoint, distance_km, estimate_rtt_ms
from cellapi.router.peers import Health
from cellapi.router.ranking import (
    Candidate,
    Explanation,
    Hint,
    Ingress,
    Ranked,
    RankingConfig,
    rank,
    require_choice,
    share_for,
)
from fedlib.catalog import FLAVORS
from fedlib.errors import InvalidArgument, ResourceExhausted
from fedlib.flavor import Flavor
from replication.model import CapacitySummary, Cell, CellState, Site, SiteState

NOW = 10_000_000
SMALL = FLAVORS["m1.small"]  # 1 vCPU, 2048 MB, 20 GB
XL = FLAVORS["m1.xlarge"]  # 8 vCPUs, 16384 MB, 160 GB
SITES = {
    "ams1": ("eu", 52.37, 4.90),
    "fra1": ("eu", 50.11, 8.68),
    "par1": ("eu", 48.86, 2.35),
    "nyc1": ("us", 40.71, -74.00),
    "chi1": ("us", 41.88, -87.63),
}


def site(site_id: str, state: SiteState = SiteState.ENABLED) -> Site:
    region, lat, lon = SITES[site_id]
    return Site(site_id, region, lat, lon, f"{site_id}:7000", state, 0)


def summary(cell_id: str, vcpus: int = 64, of: int = 64, at: int = NOW) -> CapacitySummary:
    # Memory and disk scale with vCPUs so the vCPU count is the binding resource in these examples.
    return CapacitySummary(cell_id, of, vcpus, of * 4096, vcpus * 4096, of * 100, vcpus * 100, 0, 4, at)


def cand(
    site_id: str,
    *,
    health: Health = Health.HEALTHY,
    rtt: float | None = None,
    vcpus: int = 64,
    of: int = 64,
    state: CellState = CellState.ENABLED,
    site_state: SiteState = SiteState.ENABLED,
    cap: CapacitySummary | str | None = "default",
) -> Candidate:
    s = site(site_id, site_state)
    cell_id = f"{site_id}-c1"
    capacity = summary(cell_id, vcpus, of) if cap == "default" else cap
    assert not isinstance(capacity, str)
    return Candidate(Cell(cell_id, site_id, s.region, f"{cell_id}:7001", state, 0), s, capacity, health, rtt)


AMS = Ingress.of(site("ams1"))


def no_draw() -> float:
    raise AssertionError("rand must not be called when every share is 1")


def run(
    cands: Sequence[Candidate],
    hint: Hint | None = None,
    *,
    flavor: object = SMALL,
    rand: Callable[[], float] = no_draw,
    ingress: Ingress = AMS,
) -> Explanation:
    return rank(flavor, hint or Hint(), ingress, cands, now_ms=NOW, rand=rand)  # type: ignore[arg-type]


def ids(e: Explanation) -> list[str]:
    return [r.cell.site_id for r in e.candidates]


def every_site(**overrides: Candidate) -> list[Candidate]:
    return [overrides.get(s, cand(s)) for s in SITES]


def test_nearest_by_distance_while_cold() -> None:
    e = run(every_site())
    assert ids(e) == ["ams1", "fra1", "par1", "nyc1", "chi1"]
    assert e.chosen is not None and e.chosen.cell.cell_id == "ams1-c1" and not e.chosen.rtt_measured
    assert e.reference == "ingress site ams1" and "ams1-c1 at ams1" in e.summary


def test_measured_rtt_and_estimates_share_one_scale() -> None:
    # fra answers in 1 ms; ams is unmeasured, estimated at its 2 ms overhead; nyc measured at 90 ms is
    # slower than chi's ~81 ms estimate.
    e = run(every_site(fra1=cand("fra1", rtt=1.0), nyc1=cand("nyc1", rtt=90.0)))
    assert ids(e) == ["fra1", "ams1", "par1", "chi1", "nyc1"]
    assert [r.rtt_measured for r in e.candidates] == [True, False, False, False, True]
    assert all(r.score == r.rtt_ms for r in e.candidates)
    assert "measured" in e.summary


def test_measured_rtt_applies_only_from_the_ingress_site() -> None:
    e = run(every_site(fra1=cand("fra1", rtt=0.1)), Hint(near_site="par1"))
    assert ids(e)[:3] == ["par1", "ams1", "fra1"]
    assert e.reference == "site par1" and not any(r.rtt_measured for r in e.candidates)
    assert e.candidates[0].distance_km == 0.0


def test_near_own_site_keeps_measurements() -> None:
    e = run(every_site(fra1=cand("fra1", rtt=0.1)), Hint(near_site="ams1"))
    assert ids(e)[0] == "fra1" and e.reference == "ingress site ams1"


def test_near_region_starts_at_its_site_closest_to_the_ingress() -> None:
    e = run(every_site(), Hint(near_region="us"))
    assert e.reference == "region us via site nyc1"
    assert ids(e) == ["nyc1", "chi1", "par1", "ams1", "fra1"]  # the region first, then the rest by distance
    assert "outside preferred region us" in e.candidates[2].reason


def test_near_region_spills_out_of_the_region_when_it_is_full() -> None:
    e = run(
        every_site(nyc1=cand("nyc1", vcpus=0), chi1=cand("chi1", health=Health.SUSPECT)),
        Hint(near_region="us"),
    )
    assert e.chosen is not None and e.chosen.region == "eu"


def test_near_point() -> None:
    e = run(every_site(), Hint(near_point=GeoPoint(41.0, -80.0), stay_in_region=True))
    assert ids(e)[:2] == ["nyc1", "chi1"] and e.reference.startswith("point (41.0000, -80.0000)")
    assert [r.eligible for r in e.candidates] == [True, True, False, False, False]


@pytest.mark.parametrize(
    ("hint", "ingress", "region"),
    [
        (Hint(stay_in_region=True), AMS, "eu"),
        (Hint(near_region="us", stay_in_region=True), AMS, "us"),
        (Hint(near_site="chi1", stay_in_region=True), AMS, "us"),
        (Hint(stay_in_region=True), Ingress.of(site("nyc1")), "us"),
    ],
)
def test_stay_in_region(hint: Hint, ingress: Ingress, region: str) -> None:
    e = run(every_site(), hint, ingress=ingress)
    assert {r.region for r in e.order} == {region}
    outside = [r for r in e.candidates if r.region != region]
    assert outside and all(f"outside region {region} (stay_in_region)" in r.reason for r in outside)


def test_stay_in_region_with_no_room_there_says_so() -> None:
    e = run(
        every_site(ams1=cand("ams1", vcpus=0), fra1=cand("fra1", vcpus=0), par1=cand("par1", vcpus=0)),
        Hint(stay_in_region=True),
    )
    assert e.chosen is None and "2 outside the region" in e.summary and "3 too small" in e.summary


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        (cand("ams1", state=CellState.DRAINED), "cell DRAINED"),
        (cand("ams1", state=CellState.DISABLED), "cell DISABLED"),
        (cand("ams1", site_state=SiteState.DRAINED), "site DRAINED"),
        (cand("ams1", site_state=SiteState.OFFLINE), "site OFFLINE"),
        (cand("ams1", health=Health.SUSPECT), "health SUSPECT"),
        (cand("ams1", health=Health.OFFLINE), "health OFFLINE"),
        (cand("ams1", health=Health.DRAINED), "health DRAINED"),
        (cand("ams1", cap=None), "no capacity summary"),
        (cand("ams1", cap=summary("ams1-c1", at=NOW - 30_001)), "capacity summary stale (30 s old)"),
        (cand("ams1", vcpus=0), "too small: 0 vCPUs free, need 1"),
    ],
)
def test_ineligible_cells_are_listed_last_with_their_reason(override: Candidate, reason: str) -> None:
    e = run(every_site(ams1=override))
    last = e.candidates[-1]
    assert last.cell.cell_id == "ams1-c1" and not last.eligible and last.share == 0.0
    assert reason in last.reason and e.chosen is not None and e.chosen.cell.cell_id == "fra1-c1"


def test_unknown_health_and_summary_at_the_age_limit_are_eligible() -> None:
    e = run([cand("ams1", health=Health.HEALTH_UNKNOWN, cap=summary("ams1-c1", at=NOW - 30_000))])
    assert e.chosen is not None and e.chosen.reason.startswith("eligible")


def test_nothing_fits_names_the_best_candidate() -> None:
    cands = [
        cand("ams1", vcpus=4),
        cand("nyc1", vcpus=6),
        cand("fra1", health=Health.SUSPECT),
        cand("par1", cap=None),
    ]
    e = run(cands, flavor=XL)
    assert e.chosen is None and not e.order and len(e.candidates) == 4
    assert e.summary == (
        "no cell can take 8 vCPUs, 16384 MB memory, 160 GB disk: 1 SUSPECT/OFFLINE,"
        " 1 without a fresh capacity summary, 2 too small (best: nyc1-c1 with 6 vCPUs free)"
    )
    with pytest.raises(ResourceExhausted, match="best: nyc1-c1"):
        require_choice(e)


def test_no_candidates() -> None:
    e = run([])
    assert e.chosen is None and e.candidates == () and e.summary.endswith("no cells known")


def test_require_choice_returns_the_chosen() -> None:
    e = run(every_site())
    assert require_choice(e) is e.chosen


def test_spread_group_prefers_sites_without_a_member() -> None:
    hint = Hint(spread_group="web", groups={"web": frozenset({"ams1", "fra1"}), "db": frozenset({"par1"})})
    e = run(every_site(), hint)
    assert ids(e) == ["par1", "nyc1", "chi1", "ams1", "fra1"]
    assert "site already holds a member of group web" in e.candidates[-1].reason


@pytest.mark.parametrize(
    ("fraction", "degraded", "share"),
    [
        (1.0, False, 1.0),
        (0.2, False, 1.0),
        (0.1, False, 0.55),
        (0.0, False, 0.1),
        (-0.5, False, 0.1),
        (1.0, True, 0.5),
        (0.0, True, 0.05),
    ],
)
def test_share_table(fraction: float, degraded: bool, share: float) -> None:
    assert share_for(fraction, degraded=degraded) == pytest.approx(share)


def test_nearly_full_cell_loses_its_draw_and_goes_behind_the_next() -> None:
    # ams: 2 of 64 vCPUs free, 1 left after the create (~1.6%): share ~0.17.
    cands = every_site(ams1=cand("ams1", vcpus=2))
    kept = run(cands, rand=lambda: 0.0)
    assert ids(kept)[:2] == ["ams1", "fra1"] and kept.candidates[0].share == pytest.approx(
        0.1 + 0.9 * (1 / 64) / 0.2
    )
    moved = run(cands, rand=lambda: 0.99)
    assert ids(moved)[:3] == ["fra1", "ams1", "par1"]
    assert "lost its share draw: tried after fra1-c1" in moved.candidates[1].reason
    assert "nearly full: 2% vCPUs free after this create" in moved.candidates[1].reason


def test_degraded_cell_halves_its_share() -> None:
    cands = every_site(ams1=cand("ams1", health=Health.DEGRADED))
    assert ids(run(cands, rand=lambda: 0.49))[0] == "ams1"
    e = run(cands, rand=lambda: 0.5)
    assert ids(e)[:2] == ["fra1", "ams1"] and "DEGRADED: share halved" in e.candidates[1].reason


def test_a_run_of_losers_waits_behind_the_next_winner() -> None:
    cands = every_site(ams1=cand("ams1", vcpus=2), fra1=cand("fra1", vcpus=2), chi1=cand("chi1", vcpus=2))
    e = run(cands, rand=lambda: 0.99)
    assert ids(e) == ["par1", "ams1", "fra1", "nyc1", "chi1"]  # chi has no one behind it: keeps its place


def test_gradual_spill_over_frequency_follows_the_share() -> None:
    cands = every_site(ams1=cand("ams1", vcpus=8, of=64))  # 7 of 64 left: ~11% -> share ~0.59
    rng = random.Random(7)
    firsts = sum(ids(run(cands, rand=rng.random))[0] == "ams1" for _ in range(2_000))
    assert abs(firsts / 2_000 - share_for(7 / 64)) < 0.05


def test_hint_validation() -> None:
    with pytest.raises(InvalidArgument):
        Hint(near_site="ams1", near_region="eu")
    with pytest.raises(InvalidArgument):
        Hint(spread_group="")
    with pytest.raises(InvalidArgument):
        run(every_site(), Hint(near_site="lon1"))
    with pytest.raises(InvalidArgument):
        run(every_site(), Hint(near_region="apac"))
    with pytest.raises(InvalidArgument):
        Candidate(Cell("x1", "ams1", "eu", "x:1", CellState.ENABLED, 0), site("fra1"), None, Health.HEALTHY)
    with pytest.raises(InvalidArgument):
        RankingConfig(min_share=2.0)


def test_hint_groups_are_a_frozen_copy() -> None:
    groups = {"web": frozenset({"ams1"})}
    hint = Hint(spread_group="web", groups=groups)
    groups["web"] = frozenset({"fra1"})
    assert hint.groups["web"] == frozenset({"ams1"})
    with pytest.raises(TypeError):
        hint.groups["web"] = frozenset()  # type: ignore[index]


# --- properties over random federations -------------------------------------------------------------

lats, lons = st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False)
weighted_site_states = st.sampled_from([SiteState.ENABLED] * 10 + [SiteState.DRAINED, SiteState.OFFLINE])
weighted_cell_states = st.sampled_from([CellState.ENABLED] * 10 + [CellState.DRAINED, CellState.DISABLED])
weighted_health = st.sampled_from([Health.HEALTHY] * 8 + list(Health))


def amounts(draw: st.DrawFn, most: int) -> tuple[int, int]:
    # Biased towards roomy cells and exact boundaries, so eligible, nearly full and full all show up.
    total = draw(st.integers(0, most))
    free = draw(st.sampled_from([total, total // 2, total // 10]) | st.integers(0, total))
    return total, free


@st.composite
def summaries(draw: st.DrawFn, cell_id: str) -> CapacitySummary:
    (v, vf), (m, mf), (d, df) = amounts(draw, 64), amounts(draw, 262_144), amounts(draw, 4_000)
    age = draw(st.sampled_from([0, 1_000, 30_000, 30_001]) | st.integers(0, 40_000))
    return CapacitySummary(cell_id, v, vf, m, mf, d, df, 0, 1, NOW - age)


@st.composite
def federations(draw: st.DrawFn) -> list[Candidate]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        region = draw(st.sampled_from(["eu", "us", "ap"]))
        s = Site(f"s{i}", region, draw(lats), draw(lons), "x:1", draw(weighted_site_states), 0)
        for j in range(draw(st.integers(1, 3))):
            cell = Cell(f"s{i}-c{j}", s.site_id, region, "x:1", draw(weighted_cell_states), 0)
            cap = None if draw(st.integers(0, 9)) == 0 else draw(summaries(cell.cell_id))
            rtt = draw(st.none() | st.floats(0, 300))
            out.append(Candidate(cell, s, cap, draw(weighted_health), rtt))
    return out


@st.composite
def hints(draw: st.DrawFn, cands: list[Candidate]) -> Hint:
    stay = draw(st.booleans())
    sites = sorted({c.site.site_id for c in cands})
    groups = {"g": draw(st.frozensets(st.sampled_from(sites)))} if sites else {}
    spread = draw(st.sampled_from([None, "g"]))
    kinds = ["none", "point"] + (["site", "region"] if cands else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "site":
        return Hint(
            near_site=draw(st.sampled_from(cands)).site.site_id,
            stay_in_region=stay,
            spread_group=spread,
            groups=groups,
        )
    if kind == "region":
        return Hint(
            near_region=draw(st.sampled_from(cands)).cell.region,
            stay_in_region=stay,
            spread_group=spread,
            groups=groups,
        )
    if kind == "point":
        return Hint(near_point=GeoPoint(draw(lats), draw(lons)), stay_in_region=stay, spread_group=spread)
    return Hint(stay_in_region=stay, spread_group=spread, groups=groups)


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[Candidate], Hint, Ingress]:
    cands = draw(federations())
    at_a_cell_site = draw(st.booleans())
    ingress = Ingress.of(draw(st.sampled_from(cands)).site) if cands and at_a_cell_site else AMS
    return cands, draw(hints(cands)), ingress


def region_kept_to(hint: Hint, ingress: Ingress, cands: list[Candidate]) -> str | None:
    """An independent statement of which region stay_in_region means (see Hint's docstring)."""
    if hint.near_region is not None:
        return hint.near_region
    if hint.near_site is not None:
        return next(c.cell.region for c in cands if c.site.site_id == hint.near_site)
    if hint.near_point is not None:
        d = {c.cell.cell_id: distance_km(hint.near_point, c.site_point) for c in cands}
        return min(cands, key=lambda c: d[c.cell.cell_id]).cell.region if cands else None
    return ingress.region


def fits(c: Candidate | Ranked, flavor: Flavor) -> bool:
    cap = c.capacity
    if cap is None:
        return False
    return (
        cap.vcpus_free >= flavor.vcpus
        and cap.mem_mb_free >= flavor.memory_mb
        and cap.disk_gb_free >= flavor.disk_gb
    )


def should_be_eligible(c: Candidate, flavor: Flavor, hint: Hint, region: str | None) -> bool:
    return (
        c.cell.state is CellState.ENABLED
        and c.site.state is SiteState.ENABLED
        and c.health not in (Health.SUSPECT, Health.OFFLINE, Health.DRAINED)
        and c.capacity is not None
        and NOW - c.capacity.updated_at_ms <= 30_000
        and fits(c, flavor)
        and (not hint.stay_in_region or c.cell.region == region)
    )


flavors = st.sampled_from(list(FLAVORS.values()))


@settings(max_examples=300)
@given(requests(), flavors, st.integers(0, 2**32))
def test_explanation_is_complete_and_only_eligible_cells_are_tried(
    req: tuple[list[Candidate], Hint, Ingress], flavor: Flavor, seed: int
) -> None:
    cands, hint, ingress = req
    e = rank(flavor, hint, ingress, cands, now_ms=NOW, rand=random.Random(seed).random)
    assert sorted(r.cell.cell_id for r in e.candidates) == sorted(c.cell.cell_id for c in cands)
    flags = [r.eligible for r in e.candidates]
    assert flags == sorted(flags, reverse=True)  # every eligible cell before every ineligible one
    by_id = {c.cell.cell_id: c for c in cands}
    region = region_kept_to(hint, ingress, cands)
    for r in e.candidates:
        assert r.eligible == should_be_eligible(by_id[r.cell.cell_id], flavor, hint, region), r.reason
        assert r.reason.startswith("eligible") == r.eligible and 0.0 <= r.share <= 1.0
    assert e.chosen == (e.order[0] if e.order else None) and e.summary
    if hint.near_region is None and hint.spread_group is None:  # one tier: order is by score alone
        kept = [r.score for r in e.order if "lost its share draw" not in r.reason]
        assert kept == sorted(kept)
    if e.chosen is not None:
        assert (
            e.chosen.eligible
            and fits(e.chosen, flavor)
            and e.chosen.health not in (Health.SUSPECT, Health.OFFLINE)
        )
        assert not hint.stay_in_region or e.chosen.region == region


@given(requests(), flavors, st.integers(0, 2**32))
def test_same_seed_same_answer(req: tuple[list[Candidate], Hint, Ingress], flavor: Flavor, seed: int) -> None:
    cands, hint, ingress = req
    a = rank(flavor, hint, ingress, cands, now_ms=NOW, rand=random.Random(seed).random)
    b = rank(flavor, hint, ingress, cands, now_ms=NOW, rand=random.Random(seed).random)
    assert a == b


@st.composite
def roomy_healthy(draw: st.DrawFn) -> list[Candidate]:
    names = draw(st.lists(st.sampled_from(list(SITES)), min_size=1, max_size=5, unique=True))
    return [cand(s, rtt=draw(st.none() | st.floats(0, 300))) for s in names]


@given(roomy_healthy())
def test_with_equal_health_and_room_the_nearest_wins(cands: list[Candidate]) -> None:
    e = run(cands)  # no_draw: roomy healthy cells must never reach the random source
    scores = [r.score for r in e.candidates]
    assert scores == sorted(scores) and e.chosen is not None and e.chosen.score == min(scores)
    for r, c in ((r, next(c for c in cands if c.cell == r.cell)) for r in e.candidates):
        assert r.rtt_measured == (c.rtt_ms is not None)
        assert r.rtt_ms == (c.rtt_ms if c.rtt_ms is not None else estimate_rtt_ms(r.distance_km))


@given(st.floats(-1, 2, allow_nan=False), st.floats(-1, 2, allow_nan=False), st.booleans())
def test_share_is_monotone_in_free_fraction(x: float, y: float, degraded: bool) -> None:
    lo, hi = sorted((x, y))
    assert 0.05 <= share_for(lo, degraded=degraded) <= share_for(hi, degraded=degraded) <= 1.0
    assert share_for(lo, degraded=True) <= share_for(lo)


def _with_networks(site_id: str, networks: dict[str, int], default: str = "public") -> Candidate:
    cap = dataclasses.replace(summary(f"{site_id}-c1"), networks=networks, default_network=default)
    return cand(site_id, rtt=1.0 if site_id == "ams1" else 20.0, cap=cap)


def test_a_free_address_on_each_network_asked_for_is_a_hard_constraint() -> None:
    cands = [
        _with_networks("ams1", {"public": 0, "backend": 9}),  # nearest, but public is full
        _with_networks("fra1", {"public": 3}),  # has public, no backend
        _with_networks("par1", {"public": 1, "backend": -1}),  # backend without IPv4: never full
    ]
    e = run(cands, Hint(networks=("public", "backend")))
    assert e.chosen is not None and e.chosen.cell.cell_id == "par1-c1"
    reasons = {r.cell.cell_id: r.reason for r in e.candidates}
    assert reasons["ams1-c1"] == "network public has no free address"
    assert reasons["fra1-c1"] == "no network backend"
    nothing = run(cands[:2], Hint(networks=("public", "backend")))
    assert nothing.chosen is None and not nothing.transient
    assert nothing.summary.endswith("1 without the network, 1 out of addresses"), nothing.summary


def test_a_create_naming_no_network_needs_room_on_each_cells_default_one() -> None:
    cands = [_with_networks("ams1", {"public": 0}), _with_networks("fra1", {"lan": 2}, default="lan")]
    e = run(cands)
    assert e.chosen is not None and e.chosen.cell.cell_id == "fra1-c1"
    # A cell that declares no network takes it (its guests get no NIC), as before networks existed.
    plain = run([cand("ams1", rtt=1.0)])
    assert plain.chosen is not None and plain.chosen.cell.cell_id == "ams1-c1"
