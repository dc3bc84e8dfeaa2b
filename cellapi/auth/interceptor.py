"""gRPC edges of authentication: the router's server interceptor and the client's token interceptors.

The server interceptor verifies `authorization: Bearer <token>` locally with a KeyRing (no round trip),
demands the admin role for operator methods, and hands the verified Claims to the handler through a
ContextVar (`current_claims()`), so handlers never parse metadata themselves."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from cellapi.auth.keys import KeyRing
from cellapi.auth.revoked import RevokedSet
from cellapi.auth.tokens import Claims
from fedlib.errors import CellfedError, Unauthenticated
from fedrpc.handler_shapes import with_behavior
from fedrpc.status import abort_with

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
ADMIN_PREFIXES = ("/cellfed.v1.FederationService/",)
# Probes and tooling must work without credentials: load balancers and peer routers health-check anonymously.
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_CLAIMS: contextvars.ContextVar[Claims | None] = contextvars.ContextVar("cellfed_claims", default=None)


def current_claims() -> Claims:
    """The verified caller of the RPC being handled."""
    claims = _CLAIMS.get()
    if claims is None:
        raise Unauthenticated("no verified caller for this call (is the auth interceptor installed?)")
    return claims


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return ((AUTHORIZATION, f"Bearer {token}"),)


# grpc ships no type information, so its base classes are Any to mypy; the ignores say only that.
class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        keyring: KeyRing,
        *,
        clock: Callable[[], float] = time.time,
        admin_prefixes: Sequence[str] = ADMIN_PREFIXES,
        exempt_prefixes: Sequence[str] = EXEMPT_PREFIXES,
        revoked: Callable[[], RevokedSet] = RevokedSet,
    ) -> None:
        """`revoked` gives the revocation list in force now (the router re-reads it each heartbeat)."""
        self._keyring = keyring
        self._revoked = revoked
        self._clock = clock
        self._admin = tuple(admin_prefixes)
        self._exempt = tuple(exempt_prefixes)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(self._exempt):
            return handler
        try:
            claims = self.authorize(method, handler_call_details.invocation_metadata)
        except CellfedError as exc:
            log.info("refused %s: %s", method, exc.message)
            rejection = _rejecting(exc)
            return with_behavior(handler, lambda _original: rejection, rejected=True)
        return with_behavior(handler, lambda original: _binding(original, claims))

    def authorize(self, method: str, metadata: Sequence[tuple[str, Any]] | None) -> Claims:
        """The caller's Claims, or Unauthenticated / PermissionDenied saying why not."""
        claims = self._keyring.verify(_bearer_token(metadata), self._clock())
        self._revoked().check(claims)
        if method.startswith(self._admin):
            claims.require_role("admin", method)
        return claims


def _bearer_token(metadata: Sequence[tuple[str, Any]] | None) -> str:
    values = [value for key, value in metadata or () if key == AUTHORIZATION]
    if not values:
        raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
    if len(values) > 1:
        raise Unauthenticated("more than one authorization metadata entry")
    value = values[0].decode() if isinstance(values[0], bytes) else str(values[0])
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
    return token.strip()


def _rejecting(error: CellfedError) -> Callable[..., Any]:
    # A coroutine function is a valid behaviour for all four kinds: streaming kinds treat it as one that
    # writes through the context, and it aborts before writing anything.
    async def reject(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await abort_with(context, error)

    return reject


def _binding(original: Callable[..., Any], claims: Claims) -> Callable[..., Any]:
    """A behaviour of the same shape as `original` (async generator, coroutine or plain function, which
    grpc.aio each drive differently) that runs `original` with `claims` as current_claims()."""
    if inspect.isasyncgenfunction(original):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = _CLAIMS.set(claims)
            try:
                async for response in original(request, context):
                    yield response
            finally:
                _reset(token)

        return stream
    if inspect.iscoroutinefunction(original):

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = _CLAIMS.set(claims)
            try:
                return await original(request, context)
            finally:
                _reset(token)

        return unary

    def sync(request: Any, context: grpc.ServicerContext) -> Any:
        # Sync handlers run on a thread pool whose threads outlive the call: the reset matters here.
        token = _CLAIMS.set(claims)
        try:
            return original(request, context)
        finally:
            _reset(token)

    return sync


def _reset(token: contextvars.Token[Claims | None]) -> None:
    # An abandoned async generator is finalised from another context, where reset raises ValueError;
    # nothing leaks then, because grpc.aio runs each call in its own task whose context dies with it.
    with contextlib.suppress(ValueError):
        _CLAIMS.reset(token)


class _BearerClient:
    def __init__(self, token: str | Callable[[], str]) -> None:
        # A callable lets a long-lived channel pick up a re-minted token without being rebuilt.
        self._token = token if callable(token) else (lambda: token)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        existing = list(details.metadata or ())
        if any(key == AUTHORIZATION for key, _ in existing):
            return details  # an explicit per-call credential wins
        metadata = grpc.aio.Metadata(*existing, *bearer_metadata(self._token()))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class BearerUnaryUnaryInterceptor(_BearerClient, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class BearerUnaryStreamInterceptor(_BearerClient, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


def bearer_interceptors(token: str | Callable[[], str]) -> list[grpc.aio.ClientInterceptor]:
    """Both client interceptors (grpc.aio files each interceptor under one call kind only)."""
    return [BearerUnaryUnaryInterceptor(token), BearerUnaryStreamInterceptor(token)]
