"""The one error tree. Each error names the field or thing at fault; the gRPC edge maps the class to a
status code with one table (fedlib.grpc_status), so no handler chooses codes by itself."""

from __future__ import annotations


class CellfedError(Exception):
    """Base of every error cellfed raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(CellfedError):
    """The caller sent something malformed; `field` names it."""


class NotFound(CellfedError):
    """The named thing does not exist (or is not visible to this tenant)."""


class AlreadyExists(CellfedError):
    """A create collided with an existing thing of another identity."""


class FailedPrecondition(CellfedError):
    """The request is well formed but invalid in the current state (e.g. start an ACTIVE instance)."""


class ResourceExhausted(CellfedError):
    """No capacity; the message says what was short."""


class Unavailable(CellfedError):
    """A dependency (a site, a cell, a host, the store) did not answer; retrying later may work."""


class DeadlineExceeded(CellfedError):
    """A remote call ran out of time."""


class Unauthenticated(CellfedError):
    """No valid credentials."""


class PermissionDenied(CellfedError):
    """Valid credentials without the needed role."""


class Aborted(CellfedError):
    """A concurrent change won (e.g. a lost compare-and-set); the caller may retry."""


class ConfigError(CellfedError):
    """Bad configuration; the message names the setting and the fix."""


class StoreError(CellfedError):
    """The store failed in a way the caller cannot fix by changing the request."""
