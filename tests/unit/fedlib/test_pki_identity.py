"""SPIFFE-style identities: strict parsing, exact round trips, no huge values echoed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedlib.errors import InvalidArgument
from fedlib.pki.identity import Identity, RegionIdentity, Role, parse, parse_component

_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_site = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)


@given(_label, _site, st.sampled_from(Role), _label)
def test_a_component_uri_round_trips(federation: str, site: str, role: Role, component: str) -> None:
    identity = Identity(federation, site, role, component)
    assert parse(identity.uri) == identity
    assert parse(identity.uri).uri == identity.uri  # type: ignore[union-attr]


@given(_label, _site)
def test_a_region_uri_round_trips(federation: str, region: str) -> None:
    identity = RegionIdentity(federation, region)
    assert parse(identity.uri) == identity


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://acme/site/par1/role/router/id/r1\n",
        "SPIFFE://acme/site/par1/role/router/id/r1",
        "spiffe://Acme/site/par1/role/router/id/r1",
        "spiffe://acme:443/site/par1/role/router/id/r1",
        "spiffe://acme/site/par1/role/king/id/r1",
        "spiffe://acme/site/par1/role/router/id/r1/",
        "spiffe://acme/site/par1/role/router/id/r%31",
        "spiffe://acme/site/par1/role/router",
        "https://acme/site/par1/role/router/id/r1",
        "",
    ],
)
def test_anything_but_the_exact_form_is_refused(uri: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse(uri, "peer")
    assert err.value.field == "peer"


def test_a_huge_value_is_not_echoed() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse("spiffe://acme/site/" + "x" * 100_000 + "/role/router/id/r1")
    assert len(err.value.message) < 400


def test_a_region_uri_is_not_a_component() -> None:
    with pytest.raises(InvalidArgument, match="region CA"):
        parse_component("spiffe://acme/region/eu")
