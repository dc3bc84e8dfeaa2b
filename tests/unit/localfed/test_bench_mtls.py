"""`cellfed bench mtls` runs its three modes over real loopback gRPC and prints figures (a smoke run:
the numbers themselves are the benchmark's to report, not a test's to judge)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from localfed.bench.mtls import MODES, mtls


def test_bench_mtls_prints_each_mode_side_by_side_and_the_rotation_time() -> None:
    result = CliRunner().invoke(mtls, ["--connections", "3", "--calls", "20", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert set(figures) == {*MODES, "rotation_s"}
    for mode in MODES:
        assert figures[mode]["new_connection"]["p50_ms"] > 0 and figures[mode]["warm_call"]["p50_ms"] > 0
    assert figures["mtls"]["warm_call"]["x_plaintext_p50"] > 0
    assert 0 < figures["rotation_s"] < 10
