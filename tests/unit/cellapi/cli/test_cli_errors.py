"""cellctl's exit codes and error lines, read off the error tree, are the ones scripts have relied on:
the same code for every gRPC status, whether the router answered or the gRPC stack did."""

from __future__ import annotations

import grpc
import pytest

from cellapi.cli.errors import EXIT_CALLER, EXIT_FAILURE, error_line, exit_code_for
from fedlib import errors
from fedrpc.status import STATUS_OF, error_from_rpc
from tests import rpc_statuses as rpc

C = grpc.StatusCode

# The table cellctl shipped with (keyed by status code), which the tree must reproduce.
SHIPPED = {
    C.INVALID_ARGUMENT: 2,
    C.NOT_FOUND: 2,
    C.ALREADY_EXISTS: 2,
    C.FAILED_PRECONDITION: 2,
    C.OUT_OF_RANGE: 2,
    C.UNAVAILABLE: 3,
    C.DEADLINE_EXCEEDED: 3,
    C.ABORTED: 3,
    C.UNAUTHENTICATED: 4,
    C.PERMISSION_DENIED: 4,
    C.RESOURCE_EXHAUSTED: 5,
}


def from_stack(code: grpc.StatusCode, details: str = "it went\nwrong") -> errors.CellfedError:
    return error_from_rpc(rpc.from_stack(code, details), target="router r1:1")


def from_router(sent: errors.CellfedError) -> errors.CellfedError:
    return error_from_rpc(rpc.from_server(sent), target="router r1:1")


@pytest.mark.parametrize("code", sorted(set(C) - {C.OK}, key=lambda c: c.value[0]), ids=lambda c: c.name)
def test_every_status_from_the_stack_keeps_its_exit_code(code: grpc.StatusCode) -> None:
    assert exit_code_for(from_stack(code)) == SHIPPED.get(code, EXIT_FAILURE)


@pytest.mark.parametrize("cls", STATUS_OF, ids=lambda c: c.__name__)
def test_every_status_a_router_sends_keeps_its_exit_code(cls: type[errors.CellfedError]) -> None:
    error = from_router(cls("no"))
    assert exit_code_for(error) == SHIPPED.get(STATUS_OF[cls], EXIT_FAILURE)


def test_errors_raised_locally_get_codes_by_the_tree_too() -> None:
    assert exit_code_for(errors.ConfigError("bad router address", field="router")) == EXIT_CALLER
    assert exit_code_for(errors.StoreError("x")) == EXIT_FAILURE


def test_the_line_says_the_code_and_the_routers_words_on_one_line() -> None:
    down = from_stack(C.UNAVAILABLE, "failed to connect to all addresses;\n  Connection refused")
    assert error_line(down, routers=("r1:1", "r2:1")) == (
        "error: UNAVAILABLE: failed to connect to all addresses; Connection refused"
        " (routers tried: r1:1, r2:1)"
    )
    cell_down = from_router(errors.Unavailable("site sin1 (cell sin1-c1) is unavailable: drained"))
    assert error_line(cell_down, routers=("r1:1",)).endswith("drained (routers tried: r1:1)")
    assert (
        error_line(from_stack(C.UNIMPLEMENTED, ""), routers=("r1:1",)) == "error: UNIMPLEMENTED: no details"
    )
    assert error_line(from_stack(C.DEADLINE_EXCEEDED, "Deadline Exceeded")) == (
        "error: DEADLINE_EXCEEDED: Deadline Exceeded"
    )
    assert error_line(errors.NotFound("instance x not found")) == "error: NOT_FOUND: instance x not found"
