"""Generated MACs (fedlib.macs): locally administered unicast, distinct within a cell for every sequence
number, the cell's hash in the prefix; and the EUI-64 address a MAC gives on a /64."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedlib.errors import InvalidArgument, ResourceExhausted
from fedlib.macs import MAX_SEQUENCE, eui64_address, mac_for, parse_mac

SEQUENCES = st.integers(min_value=0, max_value=MAX_SEQUENCE)


@given(cell=st.from_regex(r"[a-z][a-z0-9-]{1,30}[a-z0-9]", fullmatch=True), a=SEQUENCES, b=SEQUENCES)
def test_every_mac_is_locally_administered_unicast_and_distinct_within_its_cell(
    cell: str, a: int, b: int
) -> None:
    first = parse_mac(mac_for(cell, a))[0]
    assert first & 0b10 and not first & 0b01  # locally administered, not multicast
    assert (mac_for(cell, a) == mac_for(cell, b)) == (a == b)
    assert mac_for(cell, a) == mac_for(cell, a)  # a pure function of (cell, sequence)


def test_cells_differ_in_the_prefix_and_the_sequence_is_the_rest() -> None:
    assert mac_for("par1-c1", 5)[:8] != mac_for("nyc1-c1", 5)[:8]
    assert mac_for("par1-c1", 0)[9:] == "00:00:00" and mac_for("par1-c1", MAX_SEQUENCE)[9:] == "ff:ff:ff"
    assert len({mac_for("par1-c1", n) for n in range(10_000)}) == 10_000


def test_a_cell_past_its_last_mac_is_refused_and_bad_input_too() -> None:
    with pytest.raises(ResourceExhausted):
        mac_for("par1-c1", MAX_SEQUENCE + 1)
    for bad in (-1, True, 1.5):
        with pytest.raises(InvalidArgument):
            mac_for("par1-c1", bad)  # type: ignore[arg-type]
    for text in ("52:54:00:12:34", "52-54-00-12-34-56", "52:54:00:12:34:GG", "", "52:54:00:12:34:56:78"):
        with pytest.raises(InvalidArgument):
            parse_mac(text)


def test_eui64_follows_rfc4291_appendix_a() -> None:
    prefix = ipaddress.IPv6Network("2001:db8:1::/64")
    assert eui64_address(prefix, "52:54:00:12:34:56") == ipaddress.IPv6Address(
        "2001:db8:1:0:5054:ff:fe12:3456"
    )
    assert eui64_address(prefix, "00:00:5e:00:53:01") == ipaddress.IPv6Address(
        "2001:db8:1:0:200:5eff:fe00:5301"
    )
    with pytest.raises(InvalidArgument):
        eui64_address(ipaddress.IPv6Network("2001:db8::/48"), "52:54:00:12:34:56")
