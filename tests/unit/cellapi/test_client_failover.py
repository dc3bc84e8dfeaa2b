"""The SDK's failover rule, read off the error tree: for every status code, with our ErrorInfo (a router
answered) and without (the gRPC stack did); and what the client does with it: errors of the tree, never
raw gRPC errors, and a router that could not serve demoted behind the next."""

from __future__ import annotations

import grpc
import pytest

from cellapi.client import Client, fails_over
from fedlib import errors
from fedrpc.status import ERROR_OF, error_from_rpc
from tests.rpc_statuses import from_server, from_stack

C = grpc.StatusCode
SOCKET_CLOSED = "Stream removed (Socket closed)"
CONNECT_FAILED = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: refused"


FAILS_OVER = {C.UNAVAILABLE}  # the router, or the way to it, could not serve; nothing else


@pytest.mark.parametrize("code", sorted(set(C) - {C.OK}, key=lambda c: c.value[0]), ids=lambda c: c.name)
def test_only_a_router_that_could_not_serve_fails_over_with_or_without_our_error_info(
    code: grpc.StatusCode,
) -> None:
    stack = error_from_rpc(from_stack(code, SOCKET_CLOSED), target="router r1:1")
    assert fails_over(stack) == (code in FAILS_OVER), type(stack)
    answered = error_from_rpc(from_server(ERROR_OF.get(code, errors.StoreError)("x")), target="router r1:1")
    assert fails_over(answered) == (code in FAILS_OVER), type(answered)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.Unavailable("site sin1 is unavailable"), True),  # nothing happened
        (errors.Unreachable("connection refused"), True),  # never sent
        (errors.ConnectionLost("socket closed"), True),  # may have happened, but safe to resend
        (errors.DeadlineExceeded("late"), False),  # the router is slow, not gone: the answer stands
        (errors.ResourceExhausted("no room"), False),  # the federation's answer, the same elsewhere
        (errors.Aborted("lost a race"), False),
        (errors.NotFound("no such"), False),
        (errors.StoreError("bug"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_the_rule_by_class(error: errors.CellfedError, expected: bool) -> None:
    assert fails_over(error) is expected


async def test_a_router_that_cannot_serve_is_skipped_and_demoted() -> None:
    client = Client(["r1:1", "r2:1", "r3:1"], "t")
    asked: list[str] = []

    async def call(router: object) -> str:
        endpoint = router.endpoint  # type: ignore[attr-defined]
        asked.append(endpoint)
        if endpoint == "r1:1":
            raise from_stack(C.UNAVAILABLE, CONNECT_FAILED)
        if endpoint == "r2:1":
            raise from_stack(C.UNAVAILABLE, SOCKET_CLOSED)
        return endpoint

    try:
        assert await client._call(call) == "r3:1"
        assert asked == ["r1:1", "r2:1", "r3:1"]
        assert [r.endpoint for r in client._routers] == ["r3:1", "r1:1", "r2:1"]
    finally:
        await client.close()


async def test_the_federations_answer_is_raised_as_the_tree_with_its_code_and_details() -> None:
    client = Client(["r1:1", "r2:1"], "t")
    asked: list[str] = []

    async def call(router: object) -> str:
        asked.append(router.endpoint)  # type: ignore[attr-defined]
        raise from_server(errors.NotFound("instance x not found"))

    try:
        with pytest.raises(errors.NotFound) as err:
            await client._call(call)
        assert asked == ["r1:1"]
        assert (err.value.rpc_code, err.value.rpc_details) == (C.NOT_FOUND, "instance x not found")
    finally:
        await client.close()


async def test_when_every_router_is_down_the_last_failure_is_raised() -> None:
    client = Client(["r1:1", "r2:1"], "t")

    async def call(router: object) -> str:
        raise from_stack(C.UNAVAILABLE, f"{router.endpoint}: {CONNECT_FAILED}")  # type: ignore[attr-defined]

    try:
        with pytest.raises(errors.Unreachable) as err:
            await client._call(call)
        assert err.value.rpc_code is C.UNAVAILABLE and err.value.rpc_details.startswith("r2:1: ")  # type: ignore[union-attr]
        assert err.value.message.startswith("router r2:1 is unavailable: ")
    finally:
        await client.close()
