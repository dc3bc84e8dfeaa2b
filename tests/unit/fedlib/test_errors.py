"""The error tree's three answers (whose fault, did anything happen, is a retry safe) for every class,
and the bases agreeing with them."""

from __future__ import annotations

import pytest

from fedlib import errors
from fedlib.errors import Fault, Happened

CALLER, SERVER, NO, MAYBE = Fault.CALLER, Fault.SERVER, Happened.NO, Happened.MAYBE

TREE: dict[type[errors.CellfedError], tuple[Fault, Happened, bool]] = {
    errors.InvalidArgument: (CALLER, NO, False),
    errors.OutOfRange: (CALLER, NO, False),
    errors.ConfigError: (CALLER, NO, False),
    errors.NotFound: (CALLER, NO, False),
    errors.AlreadyExists: (CALLER, NO, False),
    errors.FailedPrecondition: (CALLER, NO, False),
    errors.Unauthenticated: (CALLER, NO, False),
    errors.PermissionDenied: (CALLER, NO, False),
    errors.ResourceExhausted: (SERVER, NO, True),
    errors.Aborted: (SERVER, NO, True),
    errors.Unavailable: (SERVER, NO, True),
    errors.Unreachable: (SERVER, NO, True),
    errors.ConnectionLost: (SERVER, MAYBE, True),
    errors.DeadlineExceeded: (SERVER, MAYBE, True),
    errors.StoreError: (SERVER, MAYBE, False),
    errors.CellfedError: (SERVER, MAYBE, False),  # unclassified: the worst case
}


@pytest.mark.parametrize(("cls", "expected"), TREE.items(), ids=lambda v: getattr(v, "__name__", ""))
def test_every_class_says_whose_fault_what_happened_and_whether_a_retry_is_safe(
    cls: type[errors.CellfedError], expected: tuple[Fault, Happened, bool]
) -> None:
    error = cls("boom")
    assert (error.fault, error.happened, error.retry_safe) == expected


def test_every_concrete_class_of_the_module_is_in_the_table() -> None:
    concrete = {
        v
        for v in vars(errors).values()
        if isinstance(v, type) and issubclass(v, errors.CellfedError)
        and v not in (errors.CallerError, errors.OutcomeUnknown)
    }  # fmt: skip
    assert concrete == set(TREE)


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_the_bases_agree_with_the_attributes(cls: type[errors.CellfedError]) -> None:
    assert issubclass(cls, errors.CallerError) == (cls.fault is CALLER)
    if issubclass(cls, errors.OutcomeUnknown):
        assert cls.happened is MAYBE and cls.retry_safe
    if cls.happened is MAYBE and cls.retry_safe:
        assert issubclass(cls, errors.OutcomeUnknown)


def test_a_lost_connection_is_both_an_unavailable_and_an_outcome_unknown() -> None:
    lost = errors.ConnectionLost("site x is unavailable: Socket closed")
    assert isinstance(lost, errors.Unavailable) and isinstance(lost, errors.OutcomeUnknown)
    assert lost.happened is MAYBE


def test_errors_raised_here_carry_no_wire_code_and_keep_message_and_field() -> None:
    error = errors.InvalidArgument("name is too long", field="display_name")
    assert (error.message, error.field, error.rpc_code, error.rpc_details) == (
        "name is too long", "display_name", None, None,
    )  # fmt: skip
    assert str(error) == "name is too long"
