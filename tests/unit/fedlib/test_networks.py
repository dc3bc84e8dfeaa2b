"""Provider network declarations (fedlib.networks): what a PoP routes to its cell, checked at start, every
refusal naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fedlib.errors import InvalidArgument
from fedlib.networks import default_network, parse_networks

PUBLIC: dict[str, Any] = {
    "name": "public",
    "bridge": "br-public",
    "default": True,
    "ipv4": {"cidr": "203.0.113.0/26", "gateway": "203.0.113.1", "pool": ["203.0.113.10", "203.0.113.62"]},
    "ipv6": {"prefix": "2001:db8:1::/64", "gateway": "2001:db8:1::1"},
    "dns": ["192.0.2.53", "2001:db8::53"],
}
PRIVATE: dict[str, Any] = {
    "name": "backend",
    "bridge": "br-backend",
    "ipv4": {
        "cidr": "198.51.100.0/24",
        "gateway": "198.51.100.1",
        "pool": ["198.51.100.2", "198.51.100.254"],
    },
}


def test_a_good_declaration_parses() -> None:
    networks = parse_networks([PUBLIC, PRIVATE])
    public = default_network(networks)
    assert public.name == "public" and public.ipv4 is not None and public.ipv4.pool_size == 53
    assert public.ipv6 is not None and str(public.ipv6.prefix) == "2001:db8:1::/64"
    assert networks[1].ipv6 is None and networks[1].dns == ()


def _with(base: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    out = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = out
    for part in parents:
        node = node[part]
    if value is _DROP:
        del node[leaf]
    else:
        node[leaf] = value
    return out


_DROP = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "says"),
    [
        ("ipv4.gateway", "198.51.100.1", "networks[0].ipv4.gateway", "not a host address of 203.0.113.0/26"),
        ("ipv4.gateway", "203.0.113.0", "networks[0].ipv4.gateway", "not a host address"),
        (
            "ipv4.pool",
            ["203.0.113.10", "203.0.113.80"],
            "networks[0].ipv4.pool",
            "not inside the host addresses",
        ),
        ("ipv4.pool", ["203.0.113.62", "203.0.113.10"], "networks[0].ipv4.pool", "after its end"),
        ("ipv4.pool", ["203.0.113.1", "203.0.113.20"], "networks[0].ipv4.pool", "holds the gateway"),
        ("ipv4.pool", "203.0.113.10-20", "networks[0].ipv4.pool", "[first, last]"),
        ("ipv4.cidr", "203.0.113.1/26", "networks[0].ipv4.cidr", "not a valid prefix"),
        ("ipv4.cidr", "not-a-cidr", "networks[0].ipv4.cidr", "not a valid prefix"),
        ("ipv6.prefix", "2001:db8:1::/48", "networks[0].ipv6.prefix", "must be a /64"),
        ("ipv6.gateway", "2001:db8:2::1", "networks[0].ipv6.gateway", "neither in 2001:db8:1::/64"),
        ("name", "Public Net", "networks[0].name", "lowercase"),
        ("name", "x\n", "networks[0].name", "lowercase"),
        ("bridge", "a-bridge-name-too-long", "networks[0].bridge", "1-15 characters"),
        ("dns", ["8.8.8"], "networks[0].dns[0]", "not an IP address"),
        ("default", "yes", "networks[0].default", "true or false"),
        ("mtu", 9000, "networks[0].mtu", "unknown field"),
    ],
)
def test_a_bad_field_is_refused_naming_it(path: str, value: object, field: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_networks([_with(PUBLIC, path, value), PRIVATE])
    assert err.value.field == field and says in err.value.message


def test_networks_together_have_unique_names_and_bridges_no_shared_addresses_and_one_default() -> None:
    cases = [
        ([PUBLIC, _with(PRIVATE, "name", "public")], "networks[1].name", "declared twice"),
        ([PUBLIC, _with(PRIVATE, "bridge", "br-public")], "networks[1].bridge", "declared twice"),
        (
            [
                PUBLIC,
                _with(
                    PRIVATE,
                    "ipv4",
                    {
                        "cidr": "203.0.113.32/27",
                        "gateway": "203.0.113.33",
                        "pool": ["203.0.113.34", "203.0.113.40"],
                    },
                ),
            ],
            "networks[1].ipv4.cidr",
            "overlaps networks[0]",
        ),
        ([PUBLIC, _with(PRIVATE, "ipv6", PUBLIC["ipv6"])], "networks[1].ipv6.prefix", "overlaps"),
        ([_with(PUBLIC, "default", False), PRIVATE], "networks", "exactly one network must be the default"),
        ([PUBLIC, _with(PRIVATE, "default", True)], "networks", "2 are"),
        ([], "networks", "non-empty list"),
        ([_with(PUBLIC, "ipv4", _DROP) | {"ipv6": None}], "networks[0]", "needs an ipv4 subnet"),
    ]
    for document, field, says in cases:
        with pytest.raises(InvalidArgument) as err:
            parse_networks(document)
        assert (err.value.field, says in err.value.message) == (field, True), err.value.message


def test_a_huge_bad_value_is_not_echoed() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_networks([_with(PUBLIC, "name", "A" * 100_000)])
    assert len(err.value.message) < 300


@pytest.mark.parametrize(
    ("document", "field", "says"),
    [
        ([PUBLIC] * 17, "networks", "at most 16"),
        (["public"], "networks[0]", "must be an object"),
        ([_with(PUBLIC, "ipv4", "203.0.113.0/26")], "networks[0].ipv4", "cidr, gateway and pool"),
        ([_with(PUBLIC, "ipv4.cidr", "203.0.113.0/31")], "networks[0].ipv4.cidr", "no room for guests"),
        ([_with(PUBLIC, "ipv6", "2001:db8:1::/64")], "networks[0].ipv6", "prefix and gateway"),
        ([_with(PUBLIC, "dns", ["192.0.2.1"] * 5)], "networks[0].dns", "at most 4"),
        ([_with(PUBLIC, "ipv4.gateway", "nope")], "networks[0].ipv4.gateway", "not a valid address"),
        ([_with(PUBLIC, "bridge", _DROP)], "networks[0].bridge", "is required"),
        ([_with(PUBLIC, "ipv4.pool", ["203.0.113.10", 7])], "networks[0].ipv4.pool", "is required"),
    ],
)
def test_malformed_declarations_are_refused_naming_the_field(
    document: list[object], field: str, says: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_networks(document)
    assert err.value.field == field and says in err.value.message, err.value.message


def test_an_ipv6_gateway_may_be_link_local() -> None:
    (network,) = parse_networks([_with(PUBLIC, "ipv6.gateway", "fe80::1")])
    assert network.ipv6 is not None and str(network.ipv6.gateway) == "fe80::1"
