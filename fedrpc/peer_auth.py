"""Authorization by the peer's certificate: which roles of this federation may call which service.

The TLS handshake has already verified the client's chain to the federation root (and refused an expired
one); this names the caller by the SPIFFE URI of its leaf (grpc's `peer_spiffe_id`), and refuses, before
the request is even parsed:
- no certificate, or one with no cellfed identity: UNAUTHENTICATED;
- a certificate whose serial is revoked (DIR's revocation list): UNAUTHENTICATED;
- another federation, a role the service does not serve, another site where the rule is per site:
  PERMISSION_DENIED naming the caller and the service.
A method of no listed service is refused: a service added later is closed until a rule opens it."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import grpc
from cryptography import x509

from fedlib.errors import CellfedError, InvalidArgument, PermissionDenied, Unauthenticated
from fedlib.pki.identity import Identity, Role, parse_component
from fedrpc.handler_shapes import with_behavior
from fedrpc.revocation import RevocationList
from fedrpc.status import abort_with

log = logging.getLogger(__name__)

_PEER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("cellfed_peer", default=None)


def current_peer() -> Identity | None:
    """The authorized caller of the running handler, by its certificate; None on a plaintext port."""
    return _PEER.get()


# Health checks come from the same mTLS clients (the prober) and load balancers holding a certificate;
# reflection answers only what the proto files already say.
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class PeerRule:
    """Who may call one service: any of `roles`, and when `site` is set, only from that site."""

    roles: frozenset[Role]
    site: str | None = None

    def refusal(self, peer: Identity, service: str) -> str | None:
        if peer.role not in self.roles:
            allowed = ", ".join(sorted(role.value for role in self.roles))
            return f"{service} serves {allowed} only; {peer.uri} is a {peer.role.value}"
        if self.site is not None and peer.site != self.site:
            return f"{service} serves site {self.site} only; {peer.uri} is of site {peer.site}"
        return None


class PeerAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        federation: str,
        rules: Mapping[str, PeerRule],
        *,
        revoked: RevocationList | None = None,
        exempt_prefixes: Sequence[str] = EXEMPT_PREFIXES,
    ) -> None:
        self._federation = federation
        self._rules = dict(rules)  # full service name ("cellfed.v1.CellService") -> rule
        self._revoked = revoked
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
        service = method.lstrip("/").partition("/")[0]

        async def check(context: grpc.aio.ServicerContext) -> None:
            try:
                peer = self.authorize(service, context.auth_context())
            except CellfedError as exc:
                log.info("refused %s from %s: %s", method, context.peer(), exc.message)
                await abort_with(context, exc)
                return
            # Set in the handler's own task, before it runs: what it can ask of current_peer().
            _PEER.set(peer)

        return with_behavior(handler, lambda original: original, check=check)

    def authorize(self, service: str, auth: Mapping[str, Sequence[bytes]]) -> Identity:
        """The caller's identity, or Unauthenticated / PermissionDenied saying why not."""
        peer = _peer_identity(auth)
        if self._revoked is not None:
            serial = _leaf_serial(_one(auth, "x509_pem_cert"))
            if serial is None:  # fail closed: a list is configured and this certificate cannot be checked
                raise Unauthenticated(f"the certificate of {peer.uri} cannot be checked for revocation")
            if self._revoked.contains(serial):
                raise Unauthenticated(f"the certificate of {peer.uri} (serial {serial:x}) is revoked")
        if peer.federation != self._federation:
            raise PermissionDenied(f"{peer.uri} is not of federation {self._federation}")
        rule = self._rules.get(service)
        if rule is None:
            raise PermissionDenied(f"{service} is not served to peers on this port")
        refusal = rule.refusal(peer, service)
        if refusal is not None:
            raise PermissionDenied(refusal)
        return peer


def _peer_identity(auth: Mapping[str, Sequence[bytes]]) -> Identity:
    spiffe = _one(auth, "peer_spiffe_id")
    if spiffe is None:
        raise Unauthenticated("a client certificate with a cellfed identity (spiffe://...) is required")
    try:
        return parse_component(spiffe.decode("utf-8", "replace"), "peer certificate")
    except InvalidArgument as exc:
        raise Unauthenticated(exc.message) from None


def _one(auth: Mapping[str, Sequence[bytes]], key: str) -> bytes | None:
    values = auth.get(key) or ()
    return values[0] if len(values) == 1 else None


@lru_cache(maxsize=1024)
def _leaf_serial(pem: bytes | None) -> int | None:
    # Cached: a connection's many calls carry the same PEM, and parsing it costs more than the call.
    if pem is None:
        return None
    try:
        return x509.load_pem_x509_certificate(pem).serial_number
    except ValueError:
        return None
