"""What a harness federation is made of: sites, cells and their hosts, plus the small federation most
tests use and a create request with sensible defaults."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cellfed.v1 import compute_pb2

from fedlib.networks import ProviderNetwork
from localfed.site_networks import site_network
from tests.inprocess.agent import HostSpec


@dataclass(frozen=True)
class SiteSpec:
    site_id: str
    region: str
    lat: float
    lon: float


@dataclass(frozen=True)
class CellSpec:
    cell_id: str
    site_id: str
    hosts: tuple[HostSpec, ...] = ()  # default: one roomy host named <cell>-h1
    networks: tuple[ProviderNetwork, ...] = ()  # the cell's provider networks (none: guests get no NIC)

    def host_specs(self) -> tuple[HostSpec, ...]:
        return self.hosts or (HostSpec(f"{self.cell_id}-h1"),)


# A small federation for most tests: Paris and Amsterdam in one region, New York in another. From a
# router in Paris the order is par1, ams1, nyc1 (the injected RTTs follow geography).
PAR1 = SiteSpec("par1", "eu-west", 48.86, 2.35)
AMS1 = SiteSpec("ams1", "eu-west", 52.37, 4.90)
NYC1 = SiteSpec("nyc1", "us-east", 40.71, -74.01)
SITES = (PAR1, AMS1, NYC1)


def cells(**hosts: Sequence[HostSpec]) -> list[CellSpec]:
    """One cell per site of SITES (<site>-c1), each with one roomy host unless `hosts` says otherwise
    (keyed by site id), and each its own provider network from the documentation prefixes."""
    return [
        CellSpec(f"{s.site_id}-c1", s.site_id, tuple(hosts.get(s.site_id, ())), (site_network(n),))
        for n, s in enumerate(SITES)
    ]


def create_request(
    name: str, *, flavor: str = "m1.small", request_id: str | None = None, site: str = ""
) -> compute_pb2.CreateInstanceRequest:
    request = compute_pb2.CreateInstanceRequest(
        request_id=request_id or uuid.uuid4().hex, display_name=name, flavor=flavor, image="debian-12"
    )
    if site:
        request.placement.site = site
    return request
