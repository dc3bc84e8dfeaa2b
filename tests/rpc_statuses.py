"""gRPC failures as a client sees them, for unit tests of the error edge: one the gRPC stack made (no
details of ours: the network or a dead process) and one a cellfed server sent (fedrpc.status.abort_with)."""

from __future__ import annotations

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

from fedlib.errors import CellfedError
from fedrpc.status import status_code_for, to_rpc_status


def from_stack(
    code: grpc.StatusCode, details: str, status: status_pb2.Status | None = None
) -> grpc.aio.AioRpcError:
    """A failure with `code` and `details`; with `status`, those rich details in the trailers."""
    trailing = grpc.aio.Metadata()
    if status is not None:
        trailing = grpc.aio.Metadata(*rpc_status.to_status(status).trailing_metadata)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=details)


def from_server(error: CellfedError) -> grpc.aio.AioRpcError:
    """What a cellfed server sends for `error`: the mapped code, its message and our details."""
    status = to_rpc_status(error)
    return from_stack(status_code_for(error), status.message, status)
