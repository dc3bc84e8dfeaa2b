"""The one table mapping cellfed errors to canonical gRPC status codes, with google.rpc details:
BadRequest field violations for invalid arguments, ErrorInfo (reason + domain) for everything else."""

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
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.StoreError: grpc.StatusCode.INTERNAL,
}

# The reverse, for clients and routers forwarding a cell's answer: a code back to an error class.
ERROR_OF: dict[grpc.StatusCode, type[errors.CellfedError]] = {
    code: cls for cls, code in reversed(list(STATUS_OF.items()))
}


def status_code_for(error: errors.CellfedError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def to_rpc_status(error: errors.CellfedError) -> status_pb2.Status:
    code = status_code_for(error)
    detail = any_pb2.Any()
    if isinstance(error, errors.InvalidArgument | errors.ConfigError) and error.field:
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
                ]
            )
        )
    else:
        detail.Pack(error_details_pb2.ErrorInfo(reason=type(error).__name__.upper(), domain=DOMAIN))
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message, details=[detail])


async def abort_with(context: grpc.aio.ServicerContext, error: errors.CellfedError) -> None:
    """Ends the call with the mapped status, message and details (raises grpc's AbortError)."""
    await context.abort_with_status(rpc_status.to_status(to_rpc_status(error)))


def error_from_rpc(exc: grpc.aio.AioRpcError, *, target: str) -> errors.CellfedError:
    """A remote failure as a local error: the same class when the remote said why, Unavailable/Deadline
    naming the target when the network did."""
    code = exc.code()
    message = exc.details() or code.name
    if code is grpc.StatusCode.UNAVAILABLE:
        return errors.Unavailable(f"{target} is unavailable: {message}")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DeadlineExceeded(f"{target} did not answer in time")
    cls = ERROR_OF.get(code, errors.StoreError)
    field = _field_of(exc)
    return cls(message, field=field)


def _field_of(exc: grpc.aio.AioRpcError) -> str | None:
    status = rpc_status.from_call(exc)
    if status is None:
        return None
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad) and bad.field_violations:
            return str(bad.field_violations[0].field)
    return None
