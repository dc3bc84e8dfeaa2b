"""The NIC-cost benchmark's figures come from real build steps: the cell with a network hands every
build an address (so the figure is not of a no-op), and bad arguments are refused."""

from __future__ import annotations

import pytest

from localfed.bench import address_step


def test_it_times_builds_with_and_without_a_nic_side_by_side() -> None:
    figures = address_step.time_address_build(held=50, repeats=5, n_hosts=3)
    assert figures["held"] == 50 and figures["repeats"] == 5
    assert figures["with_cpu_p50_us"] > 0 and figures["without_cpu_p50_us"] > 0 and figures["ratio_p50"] > 0


def test_the_cell_with_a_network_gives_every_prefilled_guest_its_own_address() -> None:
    core = address_step._cell(held=50, n_hosts=3, with_network=True)
    ports = [p for i in core.all_instances() for p in i.ports]
    assert len(ports) == 50 and len({p.ipv4 for p in ports}) == 50
    assert core.free_addresses(0)["public"] == 65_533 - 50


@pytest.mark.parametrize("args", [(-1, 1), (0, 0)])
def test_bad_arguments_are_refused(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        address_step.time_address_build(*args)
