"""The one table from a gRPC status to `cellctl`'s exit code, and the one-line error message.

Scripts branch on the exit code, so codes group statuses by what the caller should do next: fix the
request (2, the same code click uses for usage errors), retry later (3), get other credentials (4), wait
for or find capacity (5). Outcomes that are not RPC failures have their own codes."""

from __future__ import annotations

import grpc

EXIT_FAILURE = 1  # a status with no better group (INTERNAL, UNKNOWN, ...)
EXIT_CALLER = 2
EXIT_RETRY = 3
EXIT_AUTH = 4
EXIT_CAPACITY = 5
EXIT_INSTANCE_ERROR = 6  # create --wait: the instance reached ERROR
EXIT_WAIT_TIMEOUT = 7  # create --wait: not ACTIVE before the deadline (it may still get there)
EXIT_INTERRUPTED = 130  # Ctrl-C, the shell convention (128 + SIGINT)

EXIT_OF: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_CALLER,
    grpc.StatusCode.NOT_FOUND: EXIT_CALLER,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_CALLER,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_CALLER,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_CALLER,
    grpc.StatusCode.UNAVAILABLE: EXIT_RETRY,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_RETRY,
    grpc.StatusCode.ABORTED: EXIT_RETRY,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_CAPACITY,
}

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 other failure; 2 bad request or usage (INVALID_ARGUMENT, NOT_FOUND, "
    "ALREADY_EXISTS, FAILED_PRECONDITION); 3 retry later (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED); "
    "4 credentials (UNAUTHENTICATED, PERMISSION_DENIED); 5 no capacity (RESOURCE_EXHAUSTED); "
    "6 instance in ERROR; 7 --wait deadline passed; 130 interrupted."
)


def exit_code_for(code: grpc.StatusCode) -> int:
    return EXIT_OF.get(code, EXIT_FAILURE)


def error_line(code: grpc.StatusCode, details: str | None, *, routers: tuple[str, ...] = ()) -> str:
    """`error: <CODE>: <details>` on one line; UNAVAILABLE also names the routers it was tried at, since
    that is what the user checks next."""
    text = " ".join((details or "no details").split())  # gRPC's connection errors span lines
    line = f"error: {code.name}: {text}"
    if code is grpc.StatusCode.UNAVAILABLE and routers:
        line += f" (routers tried: {', '.join(routers)})"
    return line
