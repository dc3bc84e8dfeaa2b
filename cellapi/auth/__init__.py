"""Authentication and authorization for routers: Ed25519-signed bearer tokens verified locally at every
site (tokens), key files and hot reload (keys), and the gRPC edges (interceptor). The `token` and `keys`
operator commands live in cellapi.auth.cli, imported only by the CLI so routers never load click."""

from cellapi.auth.interceptor import (
    AuthInterceptor,
    BearerUnaryStreamInterceptor,
    BearerUnaryUnaryInterceptor,
    bearer_interceptors,
    bearer_metadata,
    current_claims,
)
from cellapi.auth.keys import KeyPairPaths, KeyRing, generate_keypair, load_public_keys, read_private_key
from cellapi.auth.tokens import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    LEEWAY_S,
    MAX_TTL_S,
    ROLES,
    Claims,
    Verifier,
    mint,
)

__all__ = [
    "ALGORITHM",
    "AUDIENCE",
    "ISSUER",
    "LEEWAY_S",
    "MAX_TTL_S",
    "ROLES",
    "AuthInterceptor",
    "BearerUnaryStreamInterceptor",
    "BearerUnaryUnaryInterceptor",
    "Claims",
    "KeyPairPaths",
    "KeyRing",
    "Verifier",
    "bearer_interceptors",
    "bearer_metadata",
    "current_claims",
    "generate_keypair",
    "load_public_keys",
    "mint",
    "read_private_key",
]
