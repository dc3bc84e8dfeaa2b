"""Verifying a chain against the federation's root: the checks a TLS stack makes, made here too so that a
process refuses bad files at start (fedrpc.tls_files) and a server can authorize a peer by its identity.

Our own path validation because cryptography's verifier refuses URI name constraints ("unsupported name
constraint"), and the root's constraint is the point. Small on purpose: the chains are ours (root, one
region CA, a leaf), so the checks are RFC 5280's for that shape: signatures, validity at `now`, CA flags,
path lengths, key usage, the URI name constraints, and exactly one spiffe URI on the leaf. Pure: `now` is
passed in.

Errors are Unauthenticated (the chain does not prove an identity) or PermissionDenied (it proves one, of
the wrong federation or role); `field` says which certificate: "leaf", "intermediate" or "ca"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedlib.errors import InvalidArgument, PermissionDenied, Unauthenticated
from fedlib.names import shown
from fedlib.pki.identity import SCHEME, Identity, Role, parse_component

_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class Verified:
    identity: Identity
    not_after: datetime  # the earliest expiry on the path: when this chain stops being valid


def load_pem_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise Unauthenticated(f"{what} holds no PEM certificate", field=what) from None
    return certificates


def verify_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: datetime,
    *,
    expect_federation: str | None = None,
    expect_role: Role | None = None,
) -> Verified:
    """`chain` is the leaf first, then any intermediates; `roots` the trusted root certificates."""
    if not chain:
        raise Unauthenticated("no certificate", field="leaf")
    if not roots:
        raise Unauthenticated("no CA certificate to verify against", field="ca")
    leaf, intermediates = chain[0], list(chain[1:])
    path = _build_path(leaf, intermediates, roots)
    _check_leaf(leaf)
    for index, cert in enumerate(path):
        what = _role_in_path(index, len(path))
        _check_validity(cert, now, what)
        if index:
            _check_ca(cert, below=index - 1, what=what)
    _check_name_constraints(path)
    identity = leaf_identity(leaf)
    root_federation = _root_federation(path[-1])
    if identity.federation != root_federation:
        raise PermissionDenied(
            f"the certificate is of federation {shown(identity.federation)}, "
            f"the CA of {shown(root_federation)}",
            field="leaf",
        )
    if expect_federation is not None and identity.federation != expect_federation:
        raise PermissionDenied(
            f"the certificate is of federation {shown(identity.federation)}, "
            f"expected {shown(expect_federation)}",
            field="leaf",
        )
    if expect_role is not None and identity.role is not expect_role:
        raise PermissionDenied(
            f"the certificate is a {identity.role.value}'s ({identity.uri}), "
            f"expected a {expect_role.value}'s",
            field="leaf",
        )
    return Verified(identity, min(cert.not_valid_after_utc for cert in path))


def verify_peer_chain(
    pem_chain: bytes,
    ca: bytes,
    now: datetime,
    *,
    expect_federation: str | None = None,
    expect_role: Role | None = None,
) -> Identity:
    """The identity of a TLS peer from the PEM grpc's `context.auth_context()` gives (`x509_pem_cert`, or
    `x509_pem_cert_chain` with the intermediates) and the root bundle PEM. The handshake verified the chain
    already; this names the peer, and re-checks so that a misconfigured server never trusts more."""
    chain = load_pem_certificates(pem_chain, "leaf")
    roots = load_pem_certificates(ca, "ca")
    # The intermediate may come with the chain or with the CA bundle: take both.
    roots_only = [cert for cert in roots if cert.issuer == cert.subject]
    extra = [cert for cert in roots if cert.issuer != cert.subject]
    verified = verify_chain(
        [*chain, *extra], roots_only, now, expect_federation=expect_federation, expect_role=expect_role
    )
    return verified.identity


def leaf_identity(leaf: x509.Certificate) -> Identity:
    uris = [uri for uri in _uris(leaf) if uri.startswith(SCHEME)]
    if len(uris) != 1:
        raise Unauthenticated(
            f"the certificate has {len(uris)} spiffe URI names; a cellfed certificate has exactly one",
            field="leaf",
        )
    try:
        return parse_component(uris[0], "leaf URI")
    except InvalidArgument as exc:
        raise Unauthenticated(exc.message, field="leaf") from None


def _build_path(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], roots: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    path = [leaf]
    pool = list(intermediates)
    while True:
        current = path[-1]
        root = _issuer_in(current, roots)
        if root is not None:
            return [*path, root]
        issuer = _issuer_in(current, pool)
        if issuer is None:
            raise Unauthenticated(
                f"the certificate ({_subject(current)}) is not issued by the CA nor by an intermediate given "
                "with it",
                field="leaf" if current is leaf else "intermediate",
            )
        pool.remove(issuer)  # each intermediate once: no loops
        path.append(issuer)


def _issuer_in(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _check_leaf(leaf: x509.Certificate) -> None:
    basic = _extension(leaf, x509.BasicConstraints)
    if basic is not None and basic.ca:
        raise Unauthenticated("the certificate is a CA certificate, not a component's", field="leaf")
    purposes = _extension(leaf, x509.ExtendedKeyUsage)
    needed = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    if purposes is None or not needed <= set(purposes):
        raise Unauthenticated("the certificate is not for both TLS server and client use", field="leaf")


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise Unauthenticated(
            f"the {what} certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC "
            "(a clock behind, or issued for later)",
            field=what,
        )
    if now > cert.not_valid_after_utc:
        raise Unauthenticated(
            f"the {what} certificate expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC", field=what
        )


def _check_ca(cert: x509.Certificate, *, below: int, what: str) -> None:
    """`below`: how many intermediates sit under this CA in the path (the leaf not counted)."""
    basic = _extension(cert, x509.BasicConstraints)
    if basic is None or not basic.ca:
        raise Unauthenticated(f"the {what} certificate ({_subject(cert)}) is not a CA", field=what)
    if basic.path_length is not None and below > basic.path_length:
        raise Unauthenticated(
            f"the {what} certificate ({_subject(cert)}) allows {basic.path_length} intermediates below it, "
            f"the chain has {below}",
            field=what,
        )
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.key_cert_sign:
        raise Unauthenticated(
            f"the {what} certificate ({_subject(cert)}) may not sign certificates", field=what
        )


def _check_name_constraints(path: list[x509.Certificate]) -> None:
    for index, ca in enumerate(path[1:], start=1):
        constraints = _extension(ca, x509.NameConstraints)
        if constraints is None:
            continue
        what = _role_in_path(index, len(path))
        subtrees = [*(constraints.permitted_subtrees or ()), *(constraints.excluded_subtrees or ())]
        if any(not isinstance(name, x509.UniformResourceIdentifier) for name in subtrees):
            # Fail closed: a constraint this code does not evaluate must not be taken as satisfied.
            raise Unauthenticated(f"the {what} certificate has name constraints other than URI", field=what)
        permitted = [name.value for name in constraints.permitted_subtrees or ()]
        excluded = [name.value for name in constraints.excluded_subtrees or ()]
        for below_index, cert in enumerate(path[:index]):
            for uri in _uris(cert):
                host = _uri_host(uri)
                allowed = not permitted or any(_host_matches(host, tree) for tree in permitted)
                if not allowed or any(_host_matches(host, tree) for tree in excluded):
                    below = _role_in_path(below_index, len(path))
                    raise PermissionDenied(
                        f"the {below} certificate's URI {shown(uri)} is outside the {what}'s name "
                        "constraints (another federation's?)",
                        field=below,
                    )


def _uri_host(uri: str) -> str:
    """The host of a URI as RFC 5280 URI constraints see it: after "//", before any '/', ':' or '?'."""
    _, sep, rest = uri.partition("://")
    if not sep:
        return ""
    for stop in "/:?#":
        rest = rest.split(stop, 1)[0]
    return rest.lower()


def _host_matches(host: str, tree: str) -> bool:
    tree = tree.lower()
    if tree.startswith("."):
        return host.endswith(tree)
    return host == tree


def federation_of_root(pem: bytes) -> str:
    """The federation a root CA file (ca.crt) was made for: its spiffe://<federation> name."""
    roots = [cert for cert in load_pem_certificates(pem, "ca") if cert.issuer == cert.subject]
    if not roots:
        raise Unauthenticated("the CA file holds no self-signed root certificate", field="ca")
    return _root_federation(roots[0])


def _root_federation(root: x509.Certificate) -> str:
    for uri in _uris(root):
        if uri.startswith(SCHEME) and "/" not in uri[len(SCHEME) :]:
            return uri[len(SCHEME) :]
    raise Unauthenticated("the CA certificate names no federation (spiffe://<federation>)", field="ca")


def _uris(cert: x509.Certificate) -> list[str]:
    san = _extension(cert, x509.SubjectAlternativeName)
    return [] if san is None else san.get_values_for_type(x509.UniformResourceIdentifier)


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _role_in_path(index: int, length: int) -> str:
    if index == 0:
        return "leaf"
    return "ca" if index == length - 1 else "intermediate"


def _subject(cert: x509.Certificate) -> str:
    return shown(cert.subject.rfc4514_string())
