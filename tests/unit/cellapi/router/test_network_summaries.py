"""The federation's networks from the directory's capacity summaries: sites per network, where each is
the default, sorted; a summary left by a cell no longer in the directory counts for nothing."""

from __future__ import annotations

from cellapi.router.networks import cell_networks, network_summaries
from replication.model import CapacitySummary, Cell, CellState


def _cell(cell_id: str, site: str) -> Cell:
    return Cell(cell_id, site, "eu-west", f"{cell_id}:7100", CellState.ENABLED, 0)


def _cap(cell_id: str, networks: dict[str, int], default: str) -> CapacitySummary:
    return CapacitySummary(cell_id, 8, 8, 1024, 1024, 10, 10, 0, 1, 1, {}, networks, default)


def test_each_network_names_its_sites_and_where_it_is_the_default() -> None:
    cells = {"par1-c1": _cell("par1-c1", "par1"), "ams1-c1": _cell("ams1-c1", "ams1")}
    capacity = {
        "par1-c1": _cap("par1-c1", {"public": 3}, "public"),
        "ams1-c1": _cap("ams1-c1", {"public": 0, "backend": -1}, "backend"),
        "gone-c1": _cap("gone-c1", {"ghost": 1}, "ghost"),
    }
    got = network_summaries(cells, capacity)
    assert [(n.name, list(n.sites), list(n.default_at)) for n in got.networks] == [
        ("backend", ["ams1"], ["ams1"]),
        ("public", ["ams1", "par1"], ["par1"]),
    ]
    assert [(n.name, n.free_addresses, n.default) for n in cell_networks(capacity["ams1-c1"])] == [
        ("backend", -1, True),
        ("public", 0, False),
    ]
