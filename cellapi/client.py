"""The Python client SDK: probes the routers it knows (grpc.health.v1), uses the nearest, and fails over
to the next in RTT order when a router cannot serve. In production anycast or GeoDNS sits in front; this
is what a client does when it knows several routers itself.

Every call has a deadline. Failures are raised as the error tree (fedlib.errors), never as raw gRPC
errors; each keeps the status code and details it came with (`rpc_code`, `rpc_details`). The failover
rule is `fails_over`, read off the tree: any other failure is the federation's answer, raised as is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from cellfed.v1 import common_pb2, compute_pb2, compute_pb2_grpc, federation_pb2, federation_pb2_grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedlib.errors import CellfedError, Happened, Unavailable
from fedrpc.channel import SecureTarget, open_channel
from fedrpc.status import error_from_rpc

T = TypeVar("T")
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class RouterChoice:
    endpoint: str
    rtt_ms: float | None  # None: did not answer the probe


def fails_over(error: CellfedError) -> bool:
    """The next router gets the request when this one could not serve it (it, or the way to it, is
    unavailable: down, unreachable, or the connection was lost) and sending it again cannot do harm:
    nothing happened, or the request is safe to resend (every router shares the idempotency ledger)."""
    return isinstance(error, Unavailable) and (error.happened is Happened.NO or error.retry_safe)


class _Router:
    def __init__(self, endpoint: str, ca: bytes | None, identity: tuple[bytes, bytes] | None) -> None:
        self.endpoint = endpoint
        # A user's TLS: the router proves itself (for the host dialed); the token proves the user. An
        # operator on a router's admin port also shows a certificate: (chain PEM, key PEM).
        secure = None
        if ca is not None:
            chain, key = identity if identity is not None else (None, None)
            credentials = grpc.ssl_channel_credentials(ca, private_key=key, certificate_chain=chain)
            secure = SecureTarget(credentials)
        self.channel = open_channel(endpoint, secure)
        self.compute = compute_pb2_grpc.ComputeServiceStub(self.channel)
        self.federation = federation_pb2_grpc.FederationServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)


class Client:
    def __init__(
        self,
        routers: Sequence[str],
        token: str,
        *,
        timeout_s: float = 10.0,
        ca: bytes | None = None,
        identity: tuple[bytes, bytes] | None = None,
    ) -> None:
        """`ca`: the PEM of the CA the routers' certificates chain to, to talk TLS; None: plaintext.
        `identity`: (certificate chain PEM, private key PEM) to show, as an operator on an admin port."""
        if not routers:
            raise ValueError("give at least one router endpoint")
        if identity is not None and ca is None:
            raise ValueError("a client certificate needs TLS: give ca too")
        self._routers = [_Router(r, ca, identity) for r in routers]
        self._metadata = (("authorization", f"Bearer {token}"),)
        self.timeout_s = timeout_s
        self.order: list[RouterChoice] = [RouterChoice(r, None) for r in routers]

    async def probe(self) -> list[RouterChoice]:
        """Orders the routers by measured RTT; those that did not answer go last, in the given order."""

        async def one(router: _Router) -> RouterChoice:
            started = time.perf_counter()
            try:
                await router.health.Check(health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT_S)
                return RouterChoice(router.endpoint, (time.perf_counter() - started) * 1000)
            except grpc.aio.AioRpcError:
                return RouterChoice(router.endpoint, None)

        results = await asyncio.gather(*(one(r) for r in self._routers))
        self.order = sorted(results, key=lambda c: (c.rtt_ms is None, c.rtt_ms or 0.0))
        by_endpoint = {r.endpoint: r for r in self._routers}
        self._routers = [by_endpoint[c.endpoint] for c in self.order]
        return self.order

    async def _call(self, fn: Callable[[_Router], Awaitable[T]]) -> T:
        last: CellfedError | None = None
        for router in list(self._routers):
            try:
                return await fn(router)
            except grpc.aio.AioRpcError as exc:
                error = _error(exc, router)
                if not fails_over(error):
                    raise error from None
                last = error
                self._routers.remove(router)  # demote: the next call starts with the next nearest
                self._routers.append(router)
        assert last is not None
        raise last

    def _kw(self) -> dict[str, Any]:
        return {"timeout": self.timeout_s, "metadata": self._metadata}

    async def create(self, request: compute_pb2.CreateInstanceRequest) -> common_pb2.Instance:
        return await self._call(lambda r: r.compute.CreateInstance(request, **self._kw()))

    async def get(self, instance_id: str) -> common_pb2.Instance:
        req = compute_pb2.GetInstanceRequest(name=_name(instance_id))
        return await self._call(lambda r: r.compute.GetInstance(req, **self._kw()))

    async def list(self, **kw: Any) -> compute_pb2.ListInstancesResponse:
        req = compute_pb2.ListInstancesRequest(**kw)
        return await self._call(lambda r: r.compute.ListInstances(req, **self._kw()))

    async def action(self, verb: str, instance_id: str) -> common_pb2.Instance:
        """verb: Delete, Start, Stop or Reboot."""
        if verb == "Delete":
            req: Any = compute_pb2.DeleteInstanceRequest(name=_name(instance_id))
        else:
            req = compute_pb2.InstanceActionRequest(name=_name(instance_id))
        return await self._call(lambda r: getattr(r.compute, f"{verb}Instance")(req, **self._kw()))

    async def whoami(self) -> compute_pb2.WhoAmIResponse:
        return await self._call(lambda r: r.compute.WhoAmI(empty_pb2.Empty(), **self._kw()))

    async def networks(self) -> compute_pb2.ListNetworksResponse:
        req = compute_pb2.ListNetworksRequest()
        return await self._call(lambda r: r.compute.ListNetworks(req, **self._kw()))

    async def watch(
        self, instance_id: str, timeout_s: float = 600.0
    ) -> AsyncIterator[common_pb2.InstanceEvent]:
        req = compute_pb2.WatchInstanceRequest(name=_name(instance_id))
        router = self._routers[0]
        call = router.compute.WatchInstance(req, timeout=timeout_s, metadata=self._metadata)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, router) from None

    async def sites(self) -> federation_pb2.ListSitesResponse:
        req = federation_pb2.ListSitesRequest()
        return await self._call(lambda r: r.federation.ListSites(req, **self._kw()))

    async def explain(
        self, request: federation_pb2.ExplainPlacementRequest
    ) -> federation_pb2.PlacementExplanation:
        return await self._call(lambda r: r.federation.ExplainPlacement(request, **self._kw()))

    async def drain(self, cell_name: str, reason: str = "") -> federation_pb2.CellView:
        """cell_name: "sites/{site}/cells/{cell}". The cell takes no new work until undrained."""
        req = federation_pb2.DrainCellRequest(name=cell_name, reason=reason)
        return await self._call(lambda r: r.federation.DrainCell(req, **self._kw()))

    async def undrain(self, cell_name: str) -> federation_pb2.CellView:
        req = federation_pb2.DrainCellRequest(name=cell_name)
        return await self._call(lambda r: r.federation.UndrainCell(req, **self._kw()))

    async def hosts(self, cell_name: str) -> federation_pb2.ListHostsResponse:
        """cell_name: "sites/{site}/cells/{cell}". Every compute host with its lease, from its cell."""
        req = federation_pb2.ListHostsRequest(parent=cell_name)
        return await self._call(lambda r: r.federation.ListHosts(req, **self._kw()))

    async def set_host_disabled(
        self, host_name: str, disabled: bool, reason: str = ""
    ) -> federation_pb2.HostView:
        """host_name: "sites/{site}/cells/{cell}/hosts/{host}". A disabled host keeps its instances."""
        req = federation_pb2.HostRequest(name=host_name, reason=reason)
        if disabled:
            return await self._call(lambda r: r.federation.DisableHost(req, **self._kw()))
        return await self._call(lambda r: r.federation.EnableHost(req, **self._kw()))

    async def evacuate_host(
        self, host_name: str, *, force: bool = False, powered_off: bool = False
    ) -> federation_pb2.EvacuateHostResponse:
        """Rebuilds the host's instances on other hosts of its cell. Safe to repeat: once it succeeded the
        host holds nothing, so a retry moves nothing."""
        req = federation_pb2.EvacuateHostRequest(name=host_name, force=force, powered_off=powered_off)
        return await self._call(lambda r: r.federation.EvacuateHost(req, **self._kw()))

    async def rtt_matrix(self) -> federation_pb2.RttMatrix:
        req = federation_pb2.GetRttMatrixRequest()
        return await self._call(lambda r: r.federation.GetRttMatrix(req, **self._kw()))

    async def close(self) -> None:
        for router in self._routers:
            await router.channel.close()


def _error(exc: grpc.aio.AioRpcError, router: _Router) -> CellfedError:
    return error_from_rpc(exc, target=f"router {router.endpoint}")


def _name(instance_id: str) -> str:
    return instance_id if instance_id.startswith("instances/") else f"instances/{instance_id}"
