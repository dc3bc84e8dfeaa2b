"""A NIC as the world outside its cell sees it, in the keyspace as one text: it round-trips exactly, a
value that does not read as a NIC is refused naming the field (never half-read, never echoed whole),
and the router's list filter takes `address=` for IPv4 and IPv6 alike."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellapi.router.requests import list_filter
from fedlib.addresses import NicAddress
from fedlib.errors import InvalidArgument
from fedlib.macs import MAX_SEQUENCE, mac_for
from replication.cql._base import decode_addresses, encode_addresses
from replication.model import IndexEntry, InstanceStatus

IID = "par1-c1.01jq5m4f3e2d1c0b9a8z7y6x5w"


@given(
    sequence=st.integers(0, MAX_SEQUENCE),
    ipv4=st.none() | st.ip_addresses(v=4),
    ipv6=st.none() | st.ip_addresses(v=6),
    name=st.from_regex(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", fullmatch=True),
)
def test_a_nic_round_trips_through_its_text(sequence: int, ipv4: object, ipv6: object, name: str) -> None:
    nic = NicAddress(name, mac_for("par1-c1", sequence), ipv4, ipv6)  # type: ignore[arg-type]
    assert NicAddress.decode(nic.encode()) == nic
    entry = IndexEntry(IID, "par1-c1", "par1-c1", "acme", "vm", "m1", InstanceStatus.ACTIVE, 1, 1, (nic, nic))
    assert decode_addresses(encode_addresses(entry)) == (nic, nic)


@pytest.mark.parametrize(
    "text",
    ["", "public", "public,not-a-mac,,", "public,02:00:00:00:00:01,999.1.1.1,", "Pub!,02:00:00:00:00:01,,",
     "public,02:00:00:00:00:01,,2001:db8::1,extra", "x" * 100_000],
)  # fmt: skip
def test_a_value_that_is_not_a_nic_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        NicAddress.decode(text)
    assert (exc.value.field or "").startswith("addresses") and len(exc.value.message) < 300


def test_no_nic_is_an_empty_text_and_reads_back_as_none() -> None:
    entry = IndexEntry(IID, "par1-c1", "par1-c1", "acme", "vm", "m1", InstanceStatus.ACTIVE, 1, 1)
    assert encode_addresses(entry) == "" and decode_addresses("") == () and decode_addresses(None) == ()


def test_the_list_filter_takes_an_ipv4_or_ipv6_address() -> None:
    assert list_filter("address=203.0.113.7").address == ipaddress.IPv4Address("203.0.113.7")
    both = list_filter("status=ACTIVE AND address=2001:db8::1")
    assert both.address == ipaddress.IPv6Address("2001:db8::1") and both.status is not None
    with pytest.raises(InvalidArgument) as exc:
        list_filter("address=203.0.113.999")
    assert exc.value.field == "filter address"
    with pytest.raises(InvalidArgument):
        list_filter("address=203.0.113.7 address=203.0.113.8")  # named twice
