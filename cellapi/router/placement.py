"""Builds the ranking inputs from what the router knows now (directory snapshot, capacity summaries,
probe table) and asks the pure policy (cellapi.router.ranking) for an ordered, explained candidate list.
Used by creates and by the operator's ExplainPlacement, so the explanation is the real decision."""

from __future__ import annotations

import random
from collections.abc import Callable

from cellfed.v1 import common_pb2

from cellapi.router import ranking
from cellapi.router.directory import Directory
from cellapi.router.geo import GeoPoint
from cellapi.router.peers import rtt_of
from cellapi.router.prober import Prober, cell_target
from cellapi.router.ranking_inputs import Candidate, Hint, Ingress, RankingConfig
from cellapi.router.settings import RouterSettings
from fedlib.errors import InvalidArgument
from fedlib.flavor import Flavor
from fedlib.names import shown
from replication.model import Cell, CellState, Site, SiteState


class Placement:
    def __init__(
        self, settings: RouterSettings, directory: Directory, prober: Prober, clock_ms: Callable[[], int]
    ) -> None:
        self._settings, self._directory, self._prober, self._now = settings, directory, prober, clock_ms
        self._config = RankingConfig(max_summary_age_ms=int(settings.capacity_max_age_s * 1000))
        self._rand = random.Random()

    def explain(
        self,
        flavor: Flavor,
        hint: common_pb2.PlacementHint,
        from_site: str,
        group_sites: frozenset[str] = frozenset(),
        networks: tuple[str, ...] = (),
    ) -> ranking.Explanation:
        snap = self._directory.snapshot
        self._check_networks_exist(networks)
        if from_site not in snap.sites and from_site != self._settings.site_id:
            raise InvalidArgument(f"from_site {shown(from_site)} is not a known site", field="from_site")
        ingress_site = snap.sites.get(from_site) or self._own_site()
        near = hint.WhichOneof("near")
        if near == "site" and hint.site not in snap.sites:
            raise InvalidArgument(
                f"placement.site {shown(hint.site)} is not a known site", field="placement.site"
            )
        point = GeoPoint(hint.point.latitude, hint.point.longitude) if near == "point" else None
        pure_hint = Hint(
            near_site=hint.site if near == "site" else None,
            near_region=hint.region if near == "region" else None,
            near_point=point,
            stay_in_region=hint.stay_in_region,
            spread_group=hint.spread_group or None,
            groups={hint.spread_group: group_sites} if hint.spread_group else {},
            networks=networks,
        )
        # This router measured RTTs from its own site only: from elsewhere, distance is the best estimate.
        measured = ingress_site.site_id == self._settings.site_id
        return ranking.rank(
            flavor,
            pure_hint,
            Ingress.of(ingress_site),
            self._candidates(measured),
            now_ms=self._now(),
            rand=self._rand.random,
            config=self._config,
        )

    def candidates(
        self,
        flavor: Flavor,
        hint: common_pb2.PlacementHint,
        from_site: str,
        group_sites: frozenset[str] = frozenset(),
        networks: tuple[str, ...] = (),
    ) -> tuple[list[Cell], str, bool]:
        """The cells to try in order; when there are none, why, and whether that may pass by itself."""
        explanation = self.explain(flavor, hint, from_site, group_sites, networks)
        eligible = [r.cell for r in explanation.candidates if r.eligible]
        return eligible, explanation.summary, explanation.transient

    def _check_networks_exist(self, networks: tuple[str, ...]) -> None:
        """A network no cell declares is the caller's mistake, refused before anything is built; one that
        cells declare but have no room on is a matter of capacity (the ranking's)."""
        summaries = self._directory.snapshot.capacity
        if not networks or not summaries:  # none asked; or no summary read yet: nothing to know
            return
        known = {name for cap in summaries.values() for name in cap.networks}
        for i, name in enumerate(networks):
            if name not in known:
                raise InvalidArgument(
                    f"networks[{i}]: no cell of the federation declares network {shown(name)}",
                    field=f"networks[{i}]",
                )

    def _candidates(self, measured: bool) -> list[Candidate]:
        snap = self._directory.snapshot
        out = []
        for cell in snap.cells.values():
            site = snap.sites.get(cell.site_id)
            if site is None or site.state is SiteState.OFFLINE:
                continue
            target = cell_target(cell.cell_id)
            health = self._prober.health(target, drained=cell.state is not CellState.ENABLED)
            rtt = self._prober_rtt(target) if measured else None
            out.append(Candidate(cell, site, snap.capacity.get(cell.cell_id), health, rtt))
        return out

    def _prober_rtt(self, target: str) -> float | None:
        return rtt_of(self._prober.table, target)

    def _own_site(self) -> Site:
        s = self._settings
        return Site(s.site_id, s.region, s.lat, s.lon, s.advertise, SiteState.ENABLED, self._now())
