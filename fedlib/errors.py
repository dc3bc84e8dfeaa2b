"""The one error tree. Each error names the field or thing at fault; the gRPC edge maps the class to a
status code with one table (fedrpc.status), so no handler chooses codes by itself.

Every error also says, as class attributes, what the one who gets it needs to decide what to do next:

- `fault`: whose fault it is. `Fault.CALLER`: the request, the credentials or the state it assumes is
  wrong; the same request fails the same way until the caller changes something. `Fault.SERVER`: this
  side or something it depends on (a cell, a host, the store, the network, a dead process).
- `happened`: whether anything happened. `Happened.NO`: a definite refusal; nothing was done, so the
  request may go elsewhere (the next candidate cell, another router). `Happened.MAYBE`: the request may
  have taken effect (a deadline, a connection lost after sending, an unexpected failure half way).
- `retry_safe`: sending the same request again, later, to the same service, may succeed and cannot do the
  work twice. cellfed's requests are idempotent (creates under their request_id, actions converge on a
  state), so an outcome unknown is retry-safe; a caller's fault is not (it would fail again), nor is an
  unexpected failure (a bug does not go away).

Two bases group them for `except` clauses: `CallerError` (fault CALLER, nothing happened) and
`OutcomeUnknown` (it may have happened; resend the same request to find out, never send it elsewhere).
They are bases, not raised by themselves. The classes named after gRPC codes are the ones to raise:

    CellfedError                      fault     happened  retry_safe
    ├── CallerError                   CALLER    NO        no
    │   ├── InvalidArgument
    │   │   └── OutOfRange
    │   ├── ConfigError
    │   ├── NotFound
    │   ├── AlreadyExists
    │   ├── FailedPrecondition
    │   ├── Unauthenticated
    │   └── PermissionDenied
    ├── ResourceExhausted             SERVER    NO        yes (later)
    ├── Aborted                       SERVER    NO        yes
    ├── Unavailable                   SERVER    NO        yes   the callee answered that it cannot serve
    │   ├── Unreachable               SERVER    NO        yes   no connection: nothing was sent
    │   └── ConnectionLost *          SERVER    MAYBE     yes   the link broke after sending
    ├── OutcomeUnknown                SERVER    MAYBE     yes
    │   ├── DeadlineExceeded
    │   └── ConnectionLost *          (* both an Unavailable and an OutcomeUnknown)
    └── StoreError                    SERVER    MAYBE     no    INTERNAL: unexpected, how far it got unknown

Branch on the attributes (or the two bases), not on lists of classes: `ConnectionLost` is an
`Unavailable` so that code catching that kind keeps working, but what happened is in `happened`.

An error decoded from a remote answer (fedrpc.status.error_from_rpc) keeps what the remote end said:
`rpc_code` (the grpc.StatusCode) and `rpc_details` (its text, verbatim). Both are None for errors raised
here; fedrpc.status.code_of gives the code either way. (Not `code`: LibvirtCallError has its own.)"""

from __future__ import annotations

import enum
from typing import ClassVar, Protocol


class Fault(enum.Enum):
    CALLER = "caller"
    SERVER = "server"


class Happened(enum.Enum):
    NO = "no"
    MAYBE = "maybe"


class StatusCodeLike(Protocol):
    """A grpc.StatusCode, seen from here (fedlib does not import grpc)."""

    @property
    def name(self) -> str: ...


class CellfedError(Exception):
    """Base of every error cellfed raises on purpose. Unclassified subclasses are taken as the worst
    case: the server's fault, may have happened, not retry-safe."""

    fault: ClassVar[Fault] = Fault.SERVER
    happened: ClassVar[Happened] = Happened.MAYBE
    retry_safe: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rpc_code: StatusCodeLike | None = None,
        rpc_details: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.rpc_code = rpc_code
        self.rpc_details = rpc_details


class CallerError(CellfedError):
    """The caller's fault, refused before anything happened; the same request fails again."""

    fault = Fault.CALLER
    happened = Happened.NO
    retry_safe = False


class OutcomeUnknown(CellfedError):
    """The request may have taken effect. Resend the same request to the same service to find out (it is
    idempotent); never send it elsewhere as if nothing happened."""

    fault = Fault.SERVER
    happened = Happened.MAYBE
    retry_safe = True


class InvalidArgument(CallerError):
    """The caller sent something malformed; `field` names it."""


class OutOfRange(InvalidArgument):
    """A value past the end of what exists (a page, a sequence); `field` names it."""


class NotFound(CallerError):
    """The named thing does not exist (or is not visible to this tenant)."""


class AlreadyExists(CallerError):
    """A create collided with an existing thing of another identity."""


class FailedPrecondition(CallerError):
    """The request is well formed but invalid in the current state (e.g. start an ACTIVE instance)."""


class ResourceExhausted(CellfedError):
    """No capacity; the message says what was short. Nothing was done; later there may be room."""

    happened = Happened.NO
    retry_safe = True


class Unavailable(CellfedError):
    """A site, a cell, a host or the store cannot serve now and said so (or was known down); nothing was
    done, and retrying later may work."""

    happened = Happened.NO
    retry_safe = True


class Unreachable(Unavailable):
    """No answer at all: the connection could not be made (refused, no route, no address), so the request
    was never sent."""


class DeadlineExceeded(OutcomeUnknown):
    """A remote call ran out of time; it may have been done."""


class ConnectionLost(OutcomeUnknown, Unavailable):
    """The connection broke with no answer after the request may have been sent (a dead process, a reset
    link): UNAVAILABLE on the wire, but it may have happened."""


class Unauthenticated(CallerError):
    """No valid credentials."""


class PermissionDenied(CallerError):
    """Valid credentials without the needed role."""


class Aborted(CellfedError):
    """A concurrent change won (e.g. a lost compare-and-set); nothing was done and the caller may retry."""

    happened = Happened.NO
    retry_safe = True


class ConfigError(CallerError):
    """Bad configuration; the message names the setting and the fix."""


class StoreError(CellfedError):
    """The store failed in a way the caller cannot fix by changing the request (or, decoded from a remote
    answer, an unexpected failure there); how far it got is not known."""
