"""The controller's side of the Agent API: one long-lived bidirectional stream per compute host.

The hub only moves messages: it registers a host on its hello, hands every inbound message to a
`HostListener` (the controller), and queues outbound desired state per host. It never decides
anything; correctness comes from the controller's level-triggered desired state, so a lost message or a
dropped stream costs latency, never an instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

import grpc
from cellfed.v1 import agent_pb2, agent_pb2_grpc

from fedlib.names import shown
from fedrpc.peer_auth import current_peer

log = logging.getLogger(__name__)

# Bounded so a stuck agent cannot grow the controller's memory; overflow is safe to drop (see send()).
_OUTBOUND_QUEUE = 1024


class HostListener(Protocol):
    async def host_connected(self, host: str, hello: agent_pb2.AgentHello) -> None: ...
    async def host_heartbeat(self, host: str, heartbeat: agent_pb2.AgentHeartbeat) -> None: ...
    async def domain_event(self, host: str, event: agent_pb2.DomainEvent) -> None: ...
    async def host_disconnected(self, host: str) -> None: ...


class _Session:
    def __init__(self, host: str) -> None:
        self.host = host
        self.outbound: asyncio.Queue[agent_pb2.ControllerMessage | None] = asyncio.Queue(_OUTBOUND_QUEUE)
        # The agent closed its side on purpose (to redial with a re-issued certificate): a crash or a stop
        # breaks the stream instead, and only that takes the host out of placement at once.
        self.ended_cleanly = False


class AgentHub(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self._listener: HostListener | None = None
        self._sessions: dict[str, _Session] = {}

    def attach(self, listener: HostListener) -> None:
        """The controller needs the hub to send and the hub the controller to listen: wired after both."""
        self._listener = listener

    @property
    def listener(self) -> HostListener:
        if self._listener is None:
            raise RuntimeError("AgentHub used before a listener was attached")
        return self._listener

    def connected_hosts(self) -> list[str]:
        return sorted(self._sessions)

    def send(self, host: str, message: agent_pb2.ControllerMessage) -> bool:
        """Queues a message for a host; False when the host has no live stream (the desired state it gets
        on reconnect covers what this message would have done)."""
        session = self._sessions.get(host)
        if session is None:
            return False
        try:
            session.outbound.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("outbound queue full for host %s; dropping (desired state will converge)", host)
            return False
        return True

    async def Connect(
        self,
        request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[agent_pb2.ControllerMessage]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("body") != "hello" or not first.hello.host:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a hello naming the host"
            )
            return
        host = first.hello.host
        peer = current_peer()
        if peer is not None and peer.id != host:
            # An agent's certificate names its host: it may not speak for another (and take its work).
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{peer.uri} may connect as host {peer.id} only, not as {shown(host)}",
            )
            return
        session = _Session(host)
        previous = self._sessions.get(host)
        if previous is not None:  # a reconnect races the old stream's teardown: the newest stream wins
            previous.outbound.put_nowait(None)
        self._sessions[host] = session
        reader = asyncio.create_task(self._read(host, session, request_iterator))
        try:
            await self.listener.host_connected(host, first.hello)
            while True:
                message = await session.outbound.get()
                if message is None:
                    break
                yield message
        finally:
            reader.cancel()
            if self._sessions.get(host) is session:
                del self._sessions[host]
                if session.ended_cleanly:
                    # It redials at once; until then it stays up only while its last heartbeat is fresh
                    # (the host grace), exactly as a silent host would.
                    log.info("host %s closed its stream to reconnect", host)
                else:
                    await self.listener.host_disconnected(host)

    async def _read(
        self, host: str, session: _Session, request_iterator: AsyncIterator[agent_pb2.AgentMessage]
    ) -> None:
        try:
            async for message in request_iterator:
                await self._dispatch(host, message)
            session.ended_cleanly = True  # the agent half-closed: no error, no cancel
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        except Exception:  # a bug in handling one message must not kill the host's stream silently
            log.exception("agent stream from %s failed", host)
        finally:
            session.outbound.put_nowait(None)

    async def _dispatch(self, host: str, message: agent_pb2.AgentMessage) -> None:
        kind = message.WhichOneof("body")
        if kind == "heartbeat":
            await self.listener.host_heartbeat(host, message.heartbeat)
        elif kind == "domain_event":
            await self.listener.domain_event(host, message.domain_event)
        elif kind == "hello":
            await self.listener.host_connected(host, message.hello)
