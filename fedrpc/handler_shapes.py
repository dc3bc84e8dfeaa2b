"""Wrapping a grpc method handler's behaviour without changing its kind, for server interceptors.

grpc.aio drives an async generator, a coroutine function and a plain function differently, and a unary
request is deserialized by gRPC before the behaviour runs unless the handler says otherwise: both matter
to an interceptor that must refuse a call before the request is parsed or the handler runs."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from fedlib.errors import InvalidArgument
from fedrpc.status import abort_with

# The field an unparseable body is reported under (google.rpc.BadRequest wants a field): all of it.
WHOLE_REQUEST = "request"


class ParseInside(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Moves a unary request's parsing into the handler, for every server (fedrpc.server installs it
    innermost): a body that does not parse is INVALID_ARGUMENT naming the request, where gRPC itself
    would end the call UNKNOWN with a traceback in the log. The authenticating interceptors outside it
    then refuse an unauthenticated caller before the body is looked at."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        return with_behavior(handler, lambda original: original)


# (request_streaming, response_streaming) -> handler factory and the attribute holding the behaviour.
_KINDS: dict[tuple[bool, bool], tuple[Callable[..., grpc.RpcMethodHandler], str]] = {
    (False, False): (grpc.unary_unary_rpc_method_handler, "unary_unary"),
    (False, True): (grpc.unary_stream_rpc_method_handler, "unary_stream"),
    (True, False): (grpc.stream_unary_rpc_method_handler, "stream_unary"),
    (True, True): (grpc.stream_stream_rpc_method_handler, "stream_stream"),
}


def with_behavior(
    handler: grpc.RpcMethodHandler,
    wrap: Callable[[Callable[..., Any]], Callable[..., Any]],
    *,
    rejected: bool = False,
    check: Callable[[grpc.aio.ServicerContext], Awaitable[None]] | None = None,
) -> grpc.RpcMethodHandler:
    """The same kind of handler, its behaviour replaced by wrap(original); with `check`, that runs first
    and may abort the call (it sees only the context: who is calling, not what they sent).

    A unary request is parsed inside the behaviour, after authentication, not by gRPC before it: a body
    gRPC cannot parse would otherwise end the call UNKNOWN (with a traceback in the log) before the
    credentials were even looked at. Here garbage without a valid token is UNAUTHENTICATED, and garbage
    from an authenticated caller is INVALID_ARGUMENT."""
    factory, attribute = _KINDS[(handler.request_streaming, handler.response_streaming)]
    behaviour = wrap(getattr(handler, attribute))
    deserializer = handler.request_deserializer
    if not handler.request_streaming and deserializer is not None:
        # A refusal never looks at the body: it stays bytes.
        parse = None if rejected else deserializer
        behaviour, deserializer = (_parsing_inside(behaviour, parse) if parse else behaviour), None
    if check is not None:
        behaviour = _after(check, behaviour)
    return factory(
        behaviour, request_deserializer=deserializer, response_serializer=handler.response_serializer
    )


def _parsing_inside(behaviour: Callable[..., Any], parse: Callable[[bytes], Any]) -> Callable[..., Any]:
    async def parsed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            return parse(raw)
        except Exception:  # protobuf raises DecodeError, and other errors for other deserializers
            await abort_with(
                context,
                InvalidArgument(
                    f"the request body ({len(raw)} bytes) is not a valid message for this method",
                    field=WHOLE_REQUEST,
                ),
            )

    if inspect.isasyncgenfunction(behaviour):

        async def stream(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            request = await parsed(raw, context)
            async for item in behaviour(request, context):
                yield item

        return stream

    async def unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        request = await parsed(raw, context)
        result = behaviour(request, context)
        return await result if inspect.isawaitable(result) else result

    return unary


def _after(
    check: Callable[[grpc.aio.ServicerContext], Awaitable[None]], original: Callable[..., Any]
) -> Callable[..., Any]:
    """`check(context)`, then the original behaviour, keeping its shape (async generator or not)."""
    if inspect.isasyncgenfunction(original):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            async for response in original(request, context):
                yield response

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(context)
        result = original(request, context)
        return await result if inspect.isawaitable(result) else result

    return unary
