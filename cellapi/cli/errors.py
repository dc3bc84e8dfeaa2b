"""`cellctl`'s exit codes and its one-line error message, read off the error tree (fedlib.errors) the
SDK raises.

Scripts branch on the exit code, so codes group failures by what the caller should do next: fix the
request (2, the same code click uses for usage errors: the caller's fault), retry later (3: the server's
fault and a retry is safe), get other credentials (4), wait for or find capacity (5). Outcomes that are
not RPC failures have their own codes."""

from __future__ import annotations

from fedlib import errors
from fedlib.errors import CellfedError, Fault
from fedrpc.status import code_of

EXIT_FAILURE = 1  # a status with no better group (INTERNAL, UNKNOWN, ...)
EXIT_CALLER = 2
EXIT_RETRY = 3
EXIT_AUTH = 4
EXIT_CAPACITY = 5
EXIT_INSTANCE_ERROR = 6  # create --wait: the instance reached ERROR
EXIT_WAIT_TIMEOUT = 7  # create --wait: not ACTIVE before the deadline (it may still get there)
EXIT_INTERRUPTED = 130  # Ctrl-C, the shell convention (128 + SIGINT)

# The classes whose code is not the one their fault and retry safety give (see exit_code_for).
EXIT_OF: dict[type[CellfedError], int] = {
    errors.Unauthenticated: EXIT_AUTH,
    errors.PermissionDenied: EXIT_AUTH,
    errors.ResourceExhausted: EXIT_CAPACITY,
}

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 other failure; 2 bad request or usage (INVALID_ARGUMENT, NOT_FOUND, "
    "ALREADY_EXISTS, FAILED_PRECONDITION); 3 retry later (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED); "
    "4 credentials (UNAUTHENTICATED, PERMISSION_DENIED); 5 no capacity (RESOURCE_EXHAUSTED); "
    "6 instance in ERROR; 7 --wait deadline passed; 130 interrupted."
)


def exit_code_for(error: CellfedError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_OF:
            return EXIT_OF[cls]
    if error.fault is Fault.CALLER:
        return EXIT_CALLER
    return EXIT_RETRY if error.retry_safe else EXIT_FAILURE


def error_line(error: CellfedError, *, routers: tuple[str, ...] = ()) -> str:
    """`error: <CODE>: <details>` on one line, with the code and details the router sent; an unavailable
    router also names the routers it was tried at, since that is what the user checks next."""
    text = " ".join((details_of(error) or "no details").split())  # gRPC's connection errors span lines
    line = f"error: {code_of(error).name}: {text}"
    if isinstance(error, errors.Unavailable) and routers:
        line += f" (routers tried: {', '.join(routers)})"
    return line


def details_of(error: CellfedError) -> str | None:
    """What the router said, verbatim; for an error raised here, its message."""
    return error.rpc_details if error.rpc_code is not None else error.message
