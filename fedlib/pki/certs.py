"""Building the federation's certificates: a root per federation, an intermediate per region, short-lived
leaves per component. Pure: keys and `now` come in; nothing is read or written here.

ECDSA P-256 everywhere, not Ed25519: Cassandra's JDK 11 has no EdDSA in TLS (JSSE got it in 15), and P-256
is what every TLS stack on the path (grpcio's BoringSSL, the JDK, openssl, curl) accepts; a P-256 key is
made in about a millisecond, so short-lived leaves cost nothing to re-issue.

The shapes follow RFC 5280 so that BoringSSL and the JDK verify them as this project does (fedlib.pki.verify):
the root is self-signed with pathlen 1 and a critical name constraint permitting URIs of the federation's
trust domain only, so a region CA can never issue an identity of another federation; an intermediate has
pathlen 0, so it issues leaves only; a leaf is no CA, has one spiffe URI SAN and both TLS purposes, since
every component is both a server and a client of its peers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedlib.errors import InvalidArgument
from fedlib.names import shown
from fedlib.pki.identity import Identity, RegionIdentity, Role, check_federation, federation_uri

ROOT_DEFAULT_DAYS = 3650
REGION_DEFAULT_DAYS = 365
LEAF_DEFAULT_HOURS = 72
# Short-lived leaves are the revocation story: no CRL to distribute, a stolen key is useful for days.
LEAF_MAX_HOURS = 30 * 24
# Backdated so that a peer whose clock is a little behind the issuer's accepts a certificate just issued.
CLOCK_SKEW = timedelta(minutes=5)
# What a server leaf answers to when the operator names no host: the local federation and single-host use.
DEFAULT_DNS: tuple[str, ...] = ("localhost",)
DEFAULT_IPS: tuple[str, ...] = ("127.0.0.1",)

PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build_root(
    key: PrivateKey, federation: str, now: datetime, days: int = ROOT_DEFAULT_DAYS
) -> x509.Certificate:
    check_federation(federation)
    _check_positive(days, "days")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, federation),
            x509.NameAttribute(NameOID.COMMON_NAME, "cellfed root CA"),
        ]
    )
    constraints = x509.NameConstraints(
        # The host part of a URI, as RFC 5280 defines URI constraints; "spiffe://acme" here would match no
        # URI at all in BoringSSL or the JDK.
        permitted_subtrees=[x509.UniformResourceIdentifier(federation)],
        excluded_subtrees=None,
    )
    builder = (
        _base(name, name, key.public_key(), now, now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(constraints, critical=True)
        .add_extension(_san([federation_uri(federation)], (), ()), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def build_region(
    root_key: PrivateKey,
    root: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    region: RegionIdentity,
    now: datetime,
    days: int = REGION_DEFAULT_DAYS,
) -> x509.Certificate:
    _check_positive(days, "days")
    not_after = now + timedelta(days=days)
    _check_within(not_after, root, "days", "the root CA")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, region.federation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"cellfed region {region.region} CA"),
        ]
    )
    builder = (
        _base(name, root.subject, public_key, now, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(_san([region.uri], (), ()), critical=False)
        .add_extension(_authority_key_id(root_key), critical=False)
    )
    return builder.sign(root_key, hashes.SHA256())


def build_leaf(
    ca_key: PrivateKey,
    ca: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    identity: Identity,
    now: datetime,
    *,
    hours: int = LEAF_DEFAULT_HOURS,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> x509.Certificate:
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= LEAF_MAX_HOURS:
        raise InvalidArgument(f"hours {shown(hours)} must be 1-{LEAF_MAX_HOURS} (30 days)", field="hours")
    not_after = now + timedelta(hours=hours)
    _check_within(not_after, ca, "hours", "its region CA")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.federation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{identity.site} {identity.role.value}"),
            x509.NameAttribute(NameOID.COMMON_NAME, identity.id),
        ]
    )
    purposes = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    builder = (
        _base(name, ca.subject, public_key, now, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(purposes, critical=False)
        .add_extension(_san([identity.uri], dns, ips, implied=_implied_name(identity)), critical=False)
        .add_extension(_authority_key_id(ca_key), critical=False)
    )
    return builder.sign(ca_key, hashes.SHA256())


def _base(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(issuer_key: PrivateKey) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


def _implied_name(identity: Identity) -> str | None:
    # An operator's certificate is a client's only: it answers to no name.
    return None if identity.role is Role.OPERATOR else identity.server_name


def _san(
    uris: Sequence[str], dns: Sequence[str], ips: Sequence[str], implied: str | None = None
) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    if implied is not None:  # built from checked parts, and may be longer than an operator's --dns
        names.append(x509.DNSName(implied))
    for host in dns:
        if host == implied:
            continue
        names.append(x509.DNSName(_check_dns(host)))
    for address in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            raise InvalidArgument(f"ip {shown(address)} is not an IPv4 or IPv6 address", field="ip") from None
    return x509.SubjectAlternativeName(names)


def _check_dns(host: str) -> str:
    try:
        check_federation(host, "dns")  # the same DNS-name rule; a wildcard is never issued
    except InvalidArgument:
        raise InvalidArgument(
            f"dns {shown(host)} must be a lowercase DNS name of at most 64 characters", field="dns"
        ) from None
    return host


def _check_positive(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{field} {shown(value)} must be a positive whole number", field=field)


def _check_within(not_after: datetime, issuer: x509.Certificate, field: str, what: str) -> None:
    # Refused rather than cut short: a certificate that silently lives less than asked surprises whoever
    # planned its rotation; the fix is to renew the issuer first.
    if not_after > issuer.not_valid_after_utc:
        raise InvalidArgument(
            f"the certificate would outlive {what} (valid until "
            f"{issuer.not_valid_after_utc:%Y-%m-%d %H:%M} UTC): ask for fewer {field} or renew {what} first",
            field=field,
        )
