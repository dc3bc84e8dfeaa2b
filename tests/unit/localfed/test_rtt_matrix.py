"""An RTT matrix given by hand: symmetric fill, scaling, and errors naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedlib.errors import ConfigError
from localfed.preflight import available_memory_mb
from localfed.sites import default_sites, matrix_from_json

SITES = default_sites(3)


def test_one_way_pairs_hold_both_ways_and_explicit_ones_win() -> None:
    got = matrix_from_json(
        {"par1": {"nyc1": 80, "sin1": 160}, "nyc1": {"sin1": 230}, "sin1": {"par1": 150}}, SITES
    )
    assert got[("nyc1", "par1")] == 80.0 and got[("par1", "nyc1")] == 80.0
    assert got[("par1", "sin1")] == 160.0 and got[("sin1", "par1")] == 150.0
    assert len(got) == 6


def test_scale_applies_to_a_given_matrix() -> None:
    got = matrix_from_json({"par1": {"nyc1": 80, "sin1": 160}, "nyc1": {"sin1": 230}}, SITES, 0.5)
    assert got[("sin1", "nyc1")] == 115.0


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"par1": {"tok1": 80}}, "unknown site 'tok1'"),
        ({"par1": {"nyc1": 80}}, "lacks"),
        ({"par1": {"nyc1": -1, "sin1": 1}, "nyc1": {"sin1": 1}}, "par1->nyc1"),
        ({"par1": {"nyc1": "far"}}, "must be a number"),
        ({"par1": {"nyc1": True}}, "must be a number"),
        ({"par1": [80]}, "row 'par1'"),
        ([["par1", "nyc1", 80]], "JSON object"),
    ],
)
def test_bad_matrices_are_refused_with_what_is_wrong(data: object, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        matrix_from_json(data, SITES)
    assert words in err.value.message and err.value.field in ("rtt", "rtt_matrix")


def test_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   2048000 kB\n")
    assert available_memory_mb(meminfo) == 2000
    meminfo.write_text("MemTotal:       24000000 kB\n")
    assert available_memory_mb(meminfo) is None
    assert available_memory_mb(tmp_path / "absent") is None
