"""Tokens: mint/verify round trip, every rejection reason, pinned algorithms, and key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cellapi.auth.revoked import RevokedSet
from cellapi.auth.tokens import (
    LEEWAY_S,
    MAX_TTL_S,
    Claims,
    Verifier,
    mint,
    revocation_of_tenant,
    revocation_of_token,
)
from fedlib.errors import ConfigError, InvalidArgument, PermissionDenied, Unauthenticated

NOW = 1_750_000_000.0


def keypair() -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


OLD_PRIV, OLD_PUB = keypair()
NEW_PRIV, NEW_PUB = keypair()


def token(private: bytes = OLD_PRIV, kid: str = "k1", *, now_s: float = NOW, **kw: Any) -> str:
    args: dict[str, Any] = {"subject": "alice", "tenant": "acme", "roles": ["user"], "ttl_s": 3600, **kw}
    return mint(private, kid, now_s=now_s, **args)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], sign: Any = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def valid_payload(**changes: Any) -> dict[str, Any]:
    payload = {"iss": "cellfed", "aud": "cellfed-api", "sub": "alice", "tenant": "acme", "roles": ["admin"],
               "iat": int(NOW), "nbf": int(NOW), "exp": int(NOW) + 60}  # fmt: skip
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def signed(payload: dict[str, Any], kid: str = "k1", private: bytes = OLD_PRIV) -> str:
    key = serialization.load_pem_private_key(private, password=None)
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})  # type: ignore[arg-type]


def rejected(verifier: Verifier, tok: str, now_s: float = NOW) -> str:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(tok, now_s)
    return info.value.message


VERIFIER = Verifier({"k1": OLD_PUB})


def test_round_trip_gives_claims() -> None:
    tok = token(roles=["user", "admin"], subject="ops-bot", tenant="ops")
    assert jwt.get_unverified_header(tok) == {"alg": "EdDSA", "typ": "JWT", "kid": "k1"}
    claims = VERIFIER.verify(tok, NOW + 10)
    token_id = jwt.decode(tok, options={"verify_signature": False})["jti"]
    assert re.fullmatch(r"[0-9a-f]{32}", token_id)  # every token is named, for revocation
    expected = Claims(
        "ops-bot", "ops", frozenset({"user", "admin"}), int(NOW) + 3600, "k1", int(NOW), token_id
    )
    assert claims == expected
    assert claims.is_admin
    assert token(subject="ops-bot") != token(subject="ops-bot")  # same claims, another id


def test_revocations_are_read_off_the_token_or_cover_a_tenant() -> None:
    tok = token(ttl_s=600)
    token_id = jwt.decode(tok, options={"verify_signature": False})["jti"]
    now_ms = int(NOW * 1000)
    one = revocation_of_token(tok, now_ms, "leaked")
    assert (one.key, one.revoked_at_ms, one.until_ms) == (
        token_id,
        now_ms,
        (int(NOW) + 600 + LEEWAY_S) * 1000,
    )
    every = revocation_of_tenant("acme", now_ms)
    assert (every.key, every.issued_before_ms, every.until_ms) == (
        "acme",
        now_ms,
        now_ms + (MAX_TTL_S + LEEWAY_S) * 1000,
    )
    claims = VERIFIER.verify(tok, NOW + 1)
    RevokedSet().check(claims)
    with pytest.raises(Unauthenticated, match="revoked"):
        RevokedSet.of([one]).check(claims)
    for revoked_at in (now_ms, now_ms + 1000):  # iat has whole seconds: its own second counts as before
        with pytest.raises(Unauthenticated, match="issued before its revocation"):
            RevokedSet.of([revocation_of_tenant("acme", revoked_at)]).check(claims)
    RevokedSet.of([revocation_of_tenant("acme", now_ms - 1000)]).check(claims)  # issued after: kept
    RevokedSet.of([revocation_of_tenant("other", now_ms + 1000)]).check(claims)  # another tenant's
    with pytest.raises(InvalidArgument, match="not a token"):
        revocation_of_token("garbage", now_ms)
    unnamed = jwt.encode({"exp": 5}, "k" * 32, algorithm="HS256")  # a token without a jti
    with pytest.raises(InvalidArgument, match="no id"):
        revocation_of_token(unnamed, now_ms)


def test_expired_after_leeway_only() -> None:
    tok = token(ttl_s=60)
    VERIFIER.verify(tok, NOW + 60 + LEEWAY_S - 1)
    assert "expired" in rejected(VERIFIER, tok, NOW + 60 + LEEWAY_S)


def test_not_yet_valid() -> None:
    tok = token(now_s=NOW + 3600)
    assert "not valid yet" in rejected(VERIFIER, tok, NOW)


def test_unknown_key_id() -> None:
    assert "unknown key id 'k9'" in rejected(VERIFIER, token(kid="k9"))


def test_missing_kid() -> None:
    key = serialization.load_pem_private_key(OLD_PRIV, password=None)
    tok = jwt.encode(valid_payload(), key, algorithm="EdDSA")  # type: ignore[arg-type]
    assert "no key id" in rejected(VERIFIER, tok)


def test_tampered_payload_fails_signature() -> None:
    header, _, signature = token().split(".")
    evil = b64(json.dumps(valid_payload(tenant="victim")).encode())
    assert "bad token signature" in rejected(VERIFIER, f"{header}.{evil}.{signature}")


def test_signed_by_another_key_with_a_known_kid() -> None:
    assert "bad token signature" in rejected(VERIFIER, token(private=NEW_PRIV, kid="k1"))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "....", "Bearer x"])
def test_malformed(garbage: str) -> None:
    assert "malformed" in rejected(VERIFIER, garbage)


def test_alg_none_rejected() -> None:
    tok = forge({"alg": "none", "typ": "JWT", "kid": "k1"}, valid_payload())
    assert "'none' is not accepted" in rejected(VERIFIER, tok)


def test_hs256_forged_with_public_key_as_secret_rejected() -> None:
    # The classic algorithm-confusion attack: a verifier that let the header pick HMAC would accept this.
    def sign(data: bytes) -> bytes:
        return hmac.new(OLD_PUB, data, hashlib.sha256).digest()

    tok = forge({"alg": "HS256", "typ": "JWT", "kid": "k1"}, valid_payload(), sign)
    assert "'HS256' is not accepted" in rejected(VERIFIER, tok)


@pytest.mark.parametrize("claim", ["tenant", "roles", "sub", "exp", "iat", "nbf", "iss", "aud"])
def test_missing_claim(claim: str) -> None:
    assert f"missing the {claim!r} claim" in rejected(VERIFIER, signed(valid_payload(**{claim: None})))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"tenant": "Bad Tenant!"}, "tenant claim is invalid"),
        ({"tenant": 7}, "tenant claim is invalid"),
        ({"roles": "admin"}, "list of strings"),
        ({"roles": ["root"]}, "no known role"),
        ({"iss": "someone-else"}, "issuer"),
        ({"aud": "other-api"}, "audience"),
        ({"exp": "soon"}, "number of seconds"),
        ({"sub": ""}, "subject"),
        ({"exp": int(NOW) + MAX_TTL_S + 1}, "exceeds the maximum"),
    ],
)
def test_bad_claims(changes: dict[str, Any], reason: str) -> None:
    assert reason in rejected(VERIFIER, signed(valid_payload(**changes)))


def test_unknown_roles_are_dropped_not_granted() -> None:
    claims = VERIFIER.verify(signed(valid_payload(roles=["user", "superuser"])), NOW)
    assert claims.roles == frozenset({"user"})


def test_rotation_two_keys_then_old_removed() -> None:
    old_token, new_token = token(OLD_PRIV, "k1"), token(NEW_PRIV, "k2")
    both = Verifier({"k1": OLD_PUB, "k2": NEW_PUB})
    assert both.verify(old_token, NOW).key_id == "k1"
    assert both.verify(new_token, NOW).key_id == "k2"
    only_new = Verifier({"k2": NEW_PUB})
    assert only_new.verify(new_token, NOW).key_id == "k2"
    assert "unknown key id 'k1'" in rejected(only_new, old_token)


@pytest.mark.parametrize(
    "kw",
    [
        {"tenant": "BAD TENANT"},
        {"roles": []},
        {"roles": ["root"]},
        {"subject": ""},
        {"ttl_s": 0},
        {"ttl_s": MAX_TTL_S + 1},
        {"kid": "../etc/passwd"},
    ],
)
def test_mint_refuses_what_verify_would(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        token(**kw)


def test_verifier_refuses_non_ed25519_or_garbage_keys() -> None:
    with pytest.raises(ConfigError):
        Verifier({"k1": b"not a pem"})
    with pytest.raises(ConfigError):
        Verifier({"../k1": OLD_PUB})


def test_require_role() -> None:
    claims = VERIFIER.verify(token(), NOW)
    claims.require_role("user", "ListInstances")
    with pytest.raises(PermissionDenied, match="needs role admin"):
        claims.require_role("admin", "ListSites")
