"""The caller's deadline, carried into the remote calls a handler makes on its behalf (gRPC's deadline
propagation, which grpc's Python server does not do by itself).

Every handler runs under the deadline its caller set (`fedrpc.handlers` enters `caller_deadline`); a
remote call made while serving it asks `share_of_deadline(cap_s)` for its timeout: never more than the
call's own cap, and never past a share of what the caller has left. The rest is kept for the handler's
own answer: falling back to the index when the owner does not answer, naming the unreachable site, or
trying the next cell. Without it, a router waiting its full 5 s on a cell behind a fresh cut (not yet
known to be down) would let a 3 s client run out of time first: the client would read
DEADLINE_EXCEEDED where the router had a definite answer to give."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

# A remote call gets at most this share of what is left of the caller's deadline.
SHARE = 0.8
# Below this, a call could not even connect: it is still made with this much (the caller may have a
# fallback that needs the attempt's failure to start).
FLOOR_S = 0.05

_DEADLINE: ContextVar[float | None] = ContextVar("cellfed_caller_deadline", default=None)  # monotonic


@contextlib.contextmanager
def caller_deadline(remaining_s: float | None) -> Iterator[None]:
    """Runs the body under a caller's deadline `remaining_s` from now (None: the caller set none)."""
    token = _DEADLINE.set(None if remaining_s is None else time.monotonic() + max(0.0, remaining_s))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def share_of_deadline(cap_s: float) -> float:
    """The timeout for one remote call made now: `cap_s`, or less when the caller's deadline is nearer."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return cap_s
    left = deadline - time.monotonic()
    return max(FLOOR_S, min(cap_s, left * SHARE))
