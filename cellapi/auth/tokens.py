"""Bearer tokens: Ed25519-signed JWTs minted by operators and verified locally at every router.

Why asymmetric: every site must verify tokens with no central round trip, so every site holds the
verification keys. With EdDSA those are PUBLIC keys; a compromised router cannot mint tokens. Only the
operators' minting host holds private keys.

Token format (RFC 7519, compact JWS):
  header  {"alg": "EdDSA", "typ": "JWT", "kid": "<key id>"}
  claims  {"iss": "cellfed", "aud": "cellfed-api", "sub": "<subject>", "tenant": "<tenant>",
           "roles": ["admin", "user"], "iat": <s>, "nbf": <s>, "exp": <s>, "jti": "<32 hex>"}
The jti names the token for revocation (`cellfed tokens revoke`, honoured by every router within a
heartbeat); a tenant's tokens issued before a time can be revoked at once too.
The algorithm is pinned to EdDSA: "none", HS* (where a public key could be abused as an HMAC secret)
and anything else are refused before any key is touched. Lifetimes above MAX_TTL_S are refused at both
ends, which is what bounds the rotation procedure below.

Key rotation (no restart, no flag day):
  1. Generate the new key pair (`cellfed keys generate --key-id NEW`) on the minting host.
  2. Add NEW.pub to every site's key directory; routers pick it up on their next reload (KeyRing).
     Both OLD and NEW verify now.
  3. Once every site has NEW.pub, start minting with --key-id NEW.
  4. Wait at least MAX_TTL_S (plus LEEWAY_S) so every token signed by OLD has expired, then remove
     OLD.pub from every site and destroy OLD.key. Tokens still signed by OLD are rejected from then on.
To revoke a leaked key, skip the wait in step 4: every token it signed dies with it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from fedlib.errors import ConfigError, InvalidArgument, PermissionDenied, Unauthenticated
from fedlib.names import check_tenant
from replication.model import Revocation, RevocationKind

ALGORITHM = "EdDSA"
ISSUER = "cellfed"
AUDIENCE = "cellfed-api"
ROLES = frozenset({"user", "admin"})
# Clocks across ISP sites drift a little; a few seconds of leeway avoids spurious rejections at edges.
LEEWAY_S = 30
MAX_TTL_S = 7 * 24 * 3600
# Key ids become file names and log fields: no path separators, short.
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_SUBJECT = 256
_TOKEN_ID = re.compile(r"[0-9a-f]{16,64}")


@dataclass(frozen=True)
class Claims:
    """A verified caller."""

    subject: str
    tenant: str
    roles: frozenset[str]
    expires_at: int
    key_id: str
    issued_at: int = 0
    token_id: str = ""  # jti; tokens minted before ids existed have none (revocable by tenant only)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def require_role(self, role: str, what: str) -> None:
        if role not in self.roles:
            have = ", ".join(sorted(self.roles)) or "none"
            raise PermissionDenied(f"{what} needs role {role}; {self.subject!r} has roles {have}")


def check_key_id(key_id: str) -> str:
    if not _KEY_ID.match(key_id or ""):
        raise InvalidArgument(
            f"key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            field="key_id",
        )
    return key_id


def mint(
    private_key_pem: bytes | str,
    key_id: str,
    *,
    subject: str,
    tenant: str,
    roles: Iterable[str],
    ttl_s: int,
    now_s: float,
) -> str:
    """A signed token; refuses what a verifier would refuse, so mistakes surface at the minting host."""
    check_key_id(key_id)
    check_tenant(tenant)
    role_set = frozenset(roles)
    if not role_set or not role_set <= ROLES:
        raise InvalidArgument(f"roles {sorted(role_set)} must be a non-empty subset of {sorted(ROLES)}")
    if not subject or len(subject) > _MAX_SUBJECT:
        raise InvalidArgument(f"subject must be 1-{_MAX_SUBJECT} characters", field="subject")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise InvalidArgument(f"ttl {ttl_s}s must be between 1s and {MAX_TTL_S}s", field="ttl")
    key = load_pem_private_key(_as_bytes(private_key_pem), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"key {key_id!r} is not an Ed25519 private key", field="key_id")
    now = int(now_s)
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "tenant": tenant,
        "roles": sorted(role_set),
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl_s),
        "jti": secrets.token_hex(16),
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id, "typ": "JWT"})


def revocation_of_token(token: str, now_ms: int, reason: str = "") -> Revocation:
    """The revocation of one token, read from the token itself (its jti and exp; the signature is not
    checked: whoever holds a token may revoke it). Kept until the token would have expired."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidArgument(f"not a token: {exc}", field="token") from None
    token_id, exp = payload.get("jti"), payload.get("exp")
    if not isinstance(token_id, str) or not token_id:
        raise InvalidArgument(
            "the token has no id (jti: minted before ids existed); revoke its tenant's tokens instead",
            field="token",
        )
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise InvalidArgument("the token has no expiry (exp)", field="token")
    until = max(now_ms + 1000, (exp + LEEWAY_S) * 1000)
    return Revocation(RevocationKind.TOKEN, token_id, 0, now_ms, until, reason)


def revocation_of_tenant(tenant: str, now_ms: int, reason: str = "") -> Revocation:
    """Every token of `tenant` issued before now; kept until the longest-lived of them has expired."""
    until = now_ms + (MAX_TTL_S + LEEWAY_S) * 1000
    return Revocation(RevocationKind.TENANT, check_tenant(tenant), now_ms, now_ms, until, reason)


class Verifier:
    """Verifies tokens against a fixed set of public keys by key id. Several keys at once is rotation."""

    def __init__(self, public_keys: Mapping[str, bytes | str]) -> None:
        self._keys = {kid: _load_public(kid, pem) for kid, pem in public_keys.items()}

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, token: str, now_s: float) -> Claims:
        key_id = self._key_id_of(token)
        payload = _decode(token, self._keys[key_id])
        return _claims_from(payload, key_id, now_s)

    def _key_id_of(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted (only EdDSA)")
        key_id = header.get("kid")
        if not isinstance(key_id, str) or not key_id:
            raise Unauthenticated("token header has no key id (kid)")
        if key_id not in self._keys:
            raise Unauthenticated(f"unknown key id {key_id!r} (retired, or not yet distributed here)")
        return key_id


def _decode(token: str, key: Ed25519PublicKey) -> dict[str, Any]:
    # Time claims are checked by _claims_from against the caller's clock, not PyJWT's wall clock.
    options: Any = {
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "require": ["iss", "aud", "sub", "iat", "nbf", "exp", "tenant", "roles"],
    }
    try:
        return jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, options=options
        )
    except jwt.InvalidSignatureError:
        raise Unauthenticated("bad token signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"token is missing the {exc.claim!r} claim") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated(f"token audience is not {AUDIENCE!r}") from None
    except jwt.InvalidIssuerError:
        raise Unauthenticated(f"token issuer is not {ISSUER!r}") from None
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"malformed token: {exc}") from None


def _claims_from(payload: dict[str, Any], key_id: str, now_s: float) -> Claims:
    iat, nbf, exp = (_int_claim(payload, name) for name in ("iat", "nbf", "exp"))
    if exp <= now_s - LEEWAY_S:
        raise Unauthenticated(f"token expired {int(now_s - exp)}s ago")
    if nbf > now_s + LEEWAY_S or iat > now_s + LEEWAY_S:
        raise Unauthenticated(f"token not valid yet (starts in {int(max(nbf, iat) - now_s)}s)")
    if exp - iat > MAX_TTL_S:
        raise Unauthenticated(f"token lifetime {exp - iat}s exceeds the maximum {MAX_TTL_S}s")
    subject = payload["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= _MAX_SUBJECT:
        raise Unauthenticated("token subject (sub) must be a 1-256 character string")
    tenant = payload["tenant"]
    try:
        check_tenant(tenant if isinstance(tenant, str) else "")
    except InvalidArgument as exc:
        raise Unauthenticated(f"token tenant claim is invalid: {exc.message}") from None
    token_id = payload.get("jti", "")
    if not isinstance(token_id, str) or not _TOKEN_ID.fullmatch(token_id or "0" * 16):
        raise Unauthenticated("token id (jti) must be 16-64 lowercase hex characters")
    return Claims(subject, tenant, _roles(payload["roles"]), exp, key_id, iat, token_id)


def _roles(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
        raise Unauthenticated("token roles claim must be a list of strings")
    # Unknown roles grant nothing and are dropped rather than refused, so a newer minting host can add a
    # role without breaking routers that have not been upgraded yet.
    known = frozenset(value) & ROLES
    if not known:
        raise Unauthenticated(f"token has no known role (expected one of {sorted(ROLES)})")
    return known


def _int_claim(payload: dict[str, Any], name: str) -> int:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"token {name} claim must be a number of seconds")
    return int(value)


def _load_public(key_id: str, pem: bytes | str) -> Ed25519PublicKey:
    if not _KEY_ID.match(key_id or ""):
        raise ConfigError(f"public key id {key_id!r} is not a valid key id", field="key_id")
    try:
        key = load_pem_public_key(_as_bytes(pem))
    except ValueError as exc:
        raise ConfigError(f"public key {key_id!r} is not a PEM public key: {exc}", field="key_id") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"public key {key_id!r} is not an Ed25519 key", field="key_id")
    return key


def _as_bytes(pem: bytes | str) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem
