"""Who a certificate says its holder is: a SPIFFE-style URI, the one identity a peer is authorized by.

    spiffe://<federation>/site/<site>/role/<role>/id/<id>    a component (leaf certificate)
    spiffe://<federation>/region/<region>                    a region's intermediate CA

The federation is the SPIFFE trust domain: the URI's host, which is what an X.509 URI name constraint
matches (RFC 5280 4.2.1.10), so the root's constraint and this parser agree on what "of this federation"
means. Parsing is strict and exact: every part fullmatched, no percent-escapes, query, fragment, port or
user, and `format(parse(uri)) == uri`, so two spellings never name one identity."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from fedlib.errors import InvalidArgument
from fedlib.names import check_id, shown

SCHEME = "spiffe://"

# DNS labels joined by dots ("acme", "cellfed.example.net"): a host name, since it is the URI's host.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FEDERATION = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# 64: it is also the root's subject O, which X.509 caps at 64 characters.
_FEDERATION_MAX = 64
# A component id is one DNS label: it may start with a digit (host ids, node numbers), unlike a site id.
_COMPONENT_ID = re.compile(_LABEL)


class Role(enum.Enum):
    ROUTER = "router"
    CELL = "cell"
    AGENT = "agent"
    CASSANDRA = "cassandra"
    OPERATOR = "operator"


ROLES: tuple[str, ...] = tuple(role.value for role in Role)


def check_federation(value: str, field: str = "federation") -> str:
    if not isinstance(value, str) or len(value) > _FEDERATION_MAX or not _FEDERATION.fullmatch(value):
        raise InvalidArgument(
            f"{field} {shown(value)} must be lowercase DNS labels (letters, digits, '-') joined by '.', "
            f"at most {_FEDERATION_MAX} characters",
            field=field,
        )
    return value


def check_component_id(value: str, field: str = "id") -> str:
    if not isinstance(value, str) or not _COMPONENT_ID.fullmatch(value):
        raise InvalidArgument(
            f"{field} {shown(value)} must be 1-63 lowercase letters, digits or '-', "
            "not starting or ending with '-'",
            field=field,
        )
    return value


def check_role(value: str, field: str = "role") -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument(
            f"{field} {shown(value)} must be one of {', '.join(ROLES)}", field=field
        ) from None


@dataclass(frozen=True)
class Identity:
    """A component of a federation: validated on construction, so an Identity is always well formed."""

    federation: str
    site: str
    role: Role
    id: str

    def __post_init__(self) -> None:
        check_federation(self.federation)
        check_id(self.site, "site")
        if not isinstance(self.role, Role):
            raise InvalidArgument(f"role {shown(self.role)} must be a Role", field="role")
        check_component_id(self.id)

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.federation}/site/{self.site}/role/{self.role.value}/id/{self.id}"

    @property
    def server_name(self) -> str:
        """The DNS name every leaf carries for its role at its site, and that a client dialing that role
        there verifies (grpc's ssl_target_name_override): grpc's Python client cannot look at a server's
        URI name, but it does check the host name, so a router dialing par1's cell refuses an agent's or
        another site's certificate even on a shared address such as 127.0.0.1."""
        return server_name(self.federation, self.site, self.role)

    @property
    def file_stem(self) -> str:
        """The name its files get (`<stem>.key`, `.crt`, `.chain.pem`): unique within a region's site."""
        return f"{self.site}-{self.role.value}-{self.id}"


@dataclass(frozen=True)
class RegionIdentity:
    """A region's intermediate CA."""

    federation: str
    region: str

    def __post_init__(self) -> None:
        check_federation(self.federation)
        check_id(self.region, "region")

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.federation}/region/{self.region}"


def federation_uri(federation: str) -> str:
    """The root CA's own URI: the trust domain alone."""
    return SCHEME + check_federation(federation)


def server_name(federation: str, site: str, role: Role) -> str:
    # <role>.<site>.<federation>: DNS labels all (a site id and a role are labels, the federation a name).
    return f"{role.value}.{site}.{federation}"


def parse(uri: str, field: str = "uri") -> Identity | RegionIdentity:
    """The identity a URI names; InvalidArgument (naming `field`, never echoing a huge value) otherwise."""
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise InvalidArgument(f"{field} {shown(uri)} must start with {SCHEME}", field=field)
    federation, _, path = uri[len(SCHEME) :].partition("/")
    try:
        check_federation(federation)
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "region":
            return RegionIdentity(federation, parts[1])
        if len(parts) == 6 and parts[0::2] == ["site", "role", "id"]:
            return Identity(federation, parts[1], check_role(parts[3]), parts[5])
    except InvalidArgument as exc:
        raise InvalidArgument(f"{field}: {exc.message}", field=field) from None
    raise InvalidArgument(
        f"{field} {shown(uri)} must be {SCHEME}<federation>/site/<site>/role/<role>/id/<id> "
        f"or {SCHEME}<federation>/region/<region>",
        field=field,
    )


def parse_component(uri: str, field: str = "uri") -> Identity:
    """A component's identity (a leaf's), refusing a region CA's URI."""
    identity = parse(uri, field)
    if not isinstance(identity, Identity):
        raise InvalidArgument(f"{field} {shown(uri)} names a region CA, not a component", field=field)
    return identity
