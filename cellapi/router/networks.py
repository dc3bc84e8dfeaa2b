"""The federation's provider networks as the router's directory knows them (each cell's capacity summary
names its networks): which sites declare each, and where it is the default. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from cellfed.v1 import compute_pb2, federation_pb2

from replication.model import CapacitySummary, Cell


def network_summaries(
    cells: Mapping[str, Cell], capacity: Mapping[str, CapacitySummary]
) -> compute_pb2.ListNetworksResponse:
    sites: dict[str, set[str]] = {}
    defaults: dict[str, set[str]] = {}
    for cell_id, cap in capacity.items():
        cell = cells.get(cell_id)
        if cell is None:  # a summary left by a cell no longer in the directory
            continue
        for name in cap.networks:
            sites.setdefault(name, set()).add(cell.site_id)
        if cap.default_network:
            defaults.setdefault(cap.default_network, set()).add(cell.site_id)
    return compute_pb2.ListNetworksResponse(
        networks=[
            compute_pb2.NetworkSummary(name=name, sites=sorted(at), default_at=sorted(defaults.get(name, ())))
            for name, at in sorted(sites.items())
        ]
    )


def cell_networks(cap: CapacitySummary) -> list[federation_pb2.CellNetwork]:
    return [
        federation_pb2.CellNetwork(name=name, free_addresses=free, default=name == cap.default_network)
        for name, free in cap.networks.items()
    ]
