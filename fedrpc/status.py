"""The one table mapping cellfed errors to canonical gRPC status codes, with google.rpc details: ErrorInfo
(reason = the error's class, domain cellfed.dev) on every status we send, plus BadRequest field
violations for invalid arguments; and the way back, from a status to an error of the tree.

The way back tells apart who answered. A status with our ErrorInfo is the remote end's own answer: the
class it names (when that class maps to the code it came with), so an UNAVAILABLE a cell chose is a
definite refusal. A status without it came from the gRPC stack: the network or a dead process. There an
UNAVAILABLE is `Unreachable` when gRPC says it never connected (nothing was sent) and `ConnectionLost`
otherwise (it may have been sent: an outcome unknown); a DEADLINE_EXCEEDED is always an outcome unknown."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from fedlib import errors

DOMAIN = "cellfed.dev"

STATUS_OF: dict[type[errors.CellfedError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ConfigError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unreachable: grpc.StatusCode.UNAVAILABLE,
    errors.ConnectionLost: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.StoreError: grpc.StatusCode.INTERNAL,
}

# The reverse, for a status without our ErrorInfo: a code back to the first class listed for it above.
ERROR_OF: dict[grpc.StatusCode, type[errors.CellfedError]] = {
    code: cls for cls, code in reversed(list(STATUS_OF.items()))
}
_BY_REASON: dict[str, type[errors.CellfedError]] = {cls.__name__.upper(): cls for cls in STATUS_OF}

# gRPC core's words for "no connection was made" (pinned by tests/unit/fedrpc/test_status.py).
_NEVER_SENT = ("failed to connect to all addresses", "errors resolving", "dns resolution failed")


def status_code_for(error: errors.CellfedError) -> grpc.StatusCode:
    """The code an error is sent with, by the table (a forwarded error goes on with its class's code)."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def code_of(error: errors.CellfedError) -> grpc.StatusCode:
    """The code an error came with when decoded from a remote answer, else the one it is sent with."""
    return error.rpc_code if isinstance(error.rpc_code, grpc.StatusCode) else status_code_for(error)


# A message is sent twice (status message and field violation), in trailers that gRPC caps at 8 KB by
# default: a validator that echoed a huge bad value would turn INVALID_ARGUMENT into RESOURCE_EXHAUSTED
# ("metadata too large"). Whatever a message holds, the wire gets at most this much of it.
MAX_MESSAGE_CHARS = 1_000


def wire_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` chars, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}... ({len(text) - limit + 40} more chars)"


def to_rpc_status(error: errors.CellfedError) -> status_pb2.Status:
    code = status_code_for(error)
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=type(error).__name__.upper(), domain=DOMAIN))
    details = [info]
    if isinstance(error, errors.InvalidArgument | errors.ConfigError) and error.field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=wire_text(error.field, 200), description=wire_text(error.message)
        )
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        details.insert(0, bad)
    message = wire_text(error.message)
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)


async def abort_with(context: grpc.aio.ServicerContext, error: errors.CellfedError) -> None:
    """Ends the call with the mapped status, message and details (raises grpc's AbortError)."""
    await context.abort_with_status(rpc_status.to_status(to_rpc_status(error)))


def error_from_rpc(exc: grpc.aio.AioRpcError, *, target: str) -> errors.CellfedError:
    """A remote failure as a local error of the tree, keeping the code and details it came with. Messages
    name the target when the failure is about reaching it (UNAVAILABLE, DEADLINE_EXCEEDED)."""
    code, details = exc.code(), exc.details()
    message = details or code.name
    status = _status_of(exc)
    cls = _class_of(code, status, message)
    if code is grpc.StatusCode.UNAVAILABLE:
        message = f"{target} is unavailable: {message}"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"{target} did not answer in time"
    return cls(message, field=_field_of(status), rpc_code=code, rpc_details=details)


def from_us(exc: grpc.aio.AioRpcError) -> bool:
    """The status carries our ErrorInfo: the remote end chose it (else the gRPC stack did)."""
    return _reason_of(_status_of(exc)) is not None


def _class_of(
    code: grpc.StatusCode, status: status_pb2.Status | None, message: str
) -> type[errors.CellfedError]:
    reason = _reason_of(status)
    if reason is not None:
        named = _BY_REASON.get(reason)
        if named is not None and STATUS_OF[named] is code:
            return named
    elif code is grpc.StatusCode.UNAVAILABLE:
        never_sent = any(marker in message.lower() for marker in _NEVER_SENT)
        return errors.Unreachable if never_sent else errors.ConnectionLost
    return ERROR_OF.get(code, errors.StoreError)


def _status_of(exc: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(exc)
    except ValueError:  # details that contradict the code: not ours
        return None


def _reason_of(status: status_pb2.Status | None) -> str | None:
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == DOMAIN:
            return str(info.reason)
    return None


def _field_of(status: status_pb2.Status | None) -> str | None:
    for detail in status.details if status is not None else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad) and bad.field_violations:
            return str(bad.field_violations[0].field)
    return None
