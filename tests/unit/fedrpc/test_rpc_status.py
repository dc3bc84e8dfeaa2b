"""From a gRPC status back to the error tree, for every code, with our ErrorInfo (the remote end chose
the status) and without it (the gRPC stack did: the network or a dead process); and the way there."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedlib import errors
from fedrpc.status import DOMAIN, STATUS_OF, code_of, error_from_rpc, from_us, status_code_for, to_rpc_status
from tests.rpc_statuses import from_server, from_stack

C = grpc.StatusCode
CONNECT_FAILED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Connection refused"
)
SOCKET_CLOSED = "Stream removed (Socket closed)"


# Without our ErrorInfo: the class by code, and for UNAVAILABLE whether gRPC ever connected.
FROM_THE_STACK: list[tuple[grpc.StatusCode, str, type[errors.CellfedError]]] = [
    (C.CANCELLED, "cancelled", errors.StoreError),
    (C.UNKNOWN, "Unexpected <class 'KeyError'>", errors.StoreError),
    (C.INVALID_ARGUMENT, "bad", errors.InvalidArgument),
    (C.DEADLINE_EXCEEDED, "Deadline Exceeded", errors.DeadlineExceeded),
    (C.NOT_FOUND, "no such", errors.NotFound),
    (C.ALREADY_EXISTS, "taken", errors.AlreadyExists),
    (C.PERMISSION_DENIED, "no", errors.PermissionDenied),
    (C.RESOURCE_EXHAUSTED, "message larger than max", errors.ResourceExhausted),
    (C.FAILED_PRECONDITION, "not now", errors.FailedPrecondition),
    (C.ABORTED, "lost a race", errors.Aborted),
    (C.OUT_OF_RANGE, "past the end", errors.OutOfRange),
    (C.UNIMPLEMENTED, "Method not found!", errors.StoreError),
    (C.INTERNAL, "internal error in GetInstance; see the server log", errors.StoreError),
    (C.UNAVAILABLE, CONNECT_FAILED, errors.Unreachable),
    (C.UNAVAILABLE, "errors resolving nowhere.invalid:1: Domain name not found", errors.Unreachable),
    (C.UNAVAILABLE, SOCKET_CLOSED, errors.ConnectionLost),
    (C.UNAVAILABLE, "Connection reset by peer", errors.ConnectionLost),
    (C.DATA_LOSS, "lost", errors.StoreError),
    (C.UNAUTHENTICATED, "no token", errors.Unauthenticated),
]


def test_the_table_covers_every_code_but_ok() -> None:
    assert {code for code, _, _ in FROM_THE_STACK} == set(C) - {C.OK}


@pytest.mark.parametrize(("code", "details", "cls"), FROM_THE_STACK, ids=lambda v: str(v)[:40])
def test_a_status_from_the_grpc_stack_is_classified_by_code(
    code: grpc.StatusCode, details: str, cls: type[errors.CellfedError]
) -> None:
    exc = from_stack(code, details)
    error = error_from_rpc(exc, target="site par1 (cell par1-c1)")
    assert type(error) is cls and not from_us(exc)
    assert (error.rpc_code, error.rpc_details, code_of(error)) == (code, details, code)


@pytest.mark.parametrize("cls", STATUS_OF, ids=lambda c: c.__name__)
def test_our_status_comes_back_as_the_class_that_sent_it(cls: type[errors.CellfedError]) -> None:
    sent = cls("it went wrong")
    exc = from_server(sent)
    error = error_from_rpc(exc, target="site par1 (cell par1-c1)")
    assert type(error) is cls and from_us(exc)
    assert (error.fault, error.happened, error.retry_safe) == (sent.fault, sent.happened, sent.retry_safe)
    assert error.rpc_code is status_code_for(sent) and error.rpc_details == "it went wrong"


def test_a_cells_own_unavailable_is_a_refusal_whatever_its_text() -> None:
    error = error_from_rpc(from_server(errors.Unavailable(CONNECT_FAILED)), target="site sin1 (cell sin1-c1)")
    assert type(error) is errors.Unavailable and error.happened is errors.Happened.NO
    lost = error_from_rpc(from_stack(C.UNAVAILABLE, SOCKET_CLOSED), target="site sin1 (cell sin1-c1)")
    assert lost.happened is errors.Happened.MAYBE


def test_messages_name_the_target_when_it_is_about_reaching_it() -> None:
    target = "site sin1 (cell sin1-c1)"
    down = error_from_rpc(from_stack(C.UNAVAILABLE, SOCKET_CLOSED), target=target)
    assert down.message == f"{target} is unavailable: {SOCKET_CLOSED}"
    late = error_from_rpc(from_stack(C.DEADLINE_EXCEEDED, "Deadline Exceeded"), target=target)
    assert late.message == f"{target} did not answer in time"
    missing = error_from_rpc(from_server(errors.NotFound("instance x not found")), target=target)
    assert missing.message == "instance x not found"


def test_a_field_violation_names_the_field_and_the_class_survives() -> None:
    sent = errors.ConfigError("bad port", field="router.port")
    error = error_from_rpc(from_server(sent), target="t")
    assert type(error) is errors.ConfigError and error.field == "router.port"
    plain = error_from_rpc(
        from_server(errors.InvalidArgument("name too long", field="display_name")), target="t"
    )
    assert type(plain) is errors.InvalidArgument and plain.field == "display_name"


def test_an_error_info_of_another_domain_or_a_reason_at_odds_with_the_code_is_not_trusted() -> None:
    foreign = status_pb2.Status(code=14, message=SOCKET_CLOSED)
    foreign.details.add().Pack(error_details_pb2.ErrorInfo(reason="UNAVAILABLE", domain="envoy.example"))
    exc = from_stack(C.UNAVAILABLE, SOCKET_CLOSED, foreign)
    assert not from_us(exc) and type(error_from_rpc(exc, target="t")) is errors.ConnectionLost
    odd = status_pb2.Status(code=14, message="x")
    odd.details.add().Pack(error_details_pb2.ErrorInfo(reason="NOTFOUND", domain=DOMAIN))
    assert type(error_from_rpc(from_stack(C.UNAVAILABLE, "x", odd), target="t")) is errors.Unavailable


def test_every_status_we_send_carries_our_error_info() -> None:
    for cls in [*STATUS_OF, errors.CellfedError]:
        status = to_rpc_status(cls("x", field="f"))
        infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
        assert len(infos) == 1, cls


async def test_grpc_words_for_never_connected_are_what_the_stack_says() -> None:
    """Pins gRPC core's text that tells Unreachable (nothing sent) from ConnectionLost."""
    for target in ("127.0.0.1:1", "nowhere.invalid:1"):
        channel = grpc.aio.insecure_channel(target)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        finally:
            await channel.close()
        assert type(error_from_rpc(err.value, target=target)) is errors.Unreachable, err.value.details()
