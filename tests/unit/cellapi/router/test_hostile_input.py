"""Hostile input over real gRPC (tests.inprocess.harness, a router and real cells on loopback): every RPC of
the public Compute and Federation APIs and of the Cell API gets Hypothesis-made requests (tests.inprocess.
hostile: every field, adversarial values) and raw random bytes as the body. For every call:
- never INTERNAL or UNKNOWN, and an answer before the deadline (no hang);
- an INVALID_ARGUMENT names its field (google.rpc.BadRequest) and the message never echoes a huge value;
- the processes keep serving (checked at the end of each run).

Examples per test: CELLFED_FUZZ_EXAMPLES (default 600: 3,000 calls, under a minute). The long run, 12,500
calls: CELLFED_FUZZ_EXAMPLES=2500 .venv/bin/pytest -s tests/unit/cellapi/router/test_hostile_input.py
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import grpc
import pytest
from cellfed.v1 import cell_pb2, compute_pb2, federation_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellapi.auth import bearer_metadata
from fedrpc.channel import open_channel
from tests.inprocess.harness import SITES, Harness, cells, create_request
from tests.inprocess.hostile import messages

EXAMPLES = int(os.environ.get("CELLFED_FUZZ_EXAMPLES", "600"))
CODES: Counter[str] = Counter()  # every answer's code, printed by the last test (pytest -s shows it)
DEADLINE_S = 3.0
SLACK_S = 2.0  # over the deadline, for a loaded 2-core machine: beyond it the call hung
MAX_MESSAGE_CHARS = 2_000  # no reply echoes a huge value back
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

COMPUTE = compute_pb2.DESCRIPTOR.services_by_name["ComputeService"]
FEDERATION = federation_pb2.DESCRIPTOR.services_by_name["FederationService"]
CELL = cell_pb2.DESCRIPTOR.services_by_name["CellService"]
# Mutations an admin fuzzes at the federation level could drain a cell or evacuate a host for the rest
# of the run: they are fuzzed too, and the run checks the federation still serves afterwards.

T = TypeVar("T")


class Background:
    """A harness in an event loop of its own thread, so Hypothesis's synchronous tests can call it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._context: Any = None
        self.h: Harness

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def __enter__(self) -> Background:
        self._context = Harness.running(SITES, cells(), routers=["par1", "nyc1"])
        self.h = self.run(self._context.__aenter__())
        self.router = self.run(_open(f"127.0.0.1:{self.h.routers['par1'].port}"))
        self.cell = self.run(_open(self.h.cells["par1-c1"].address))
        self.user = bearer_metadata(self.h.token("acme"))
        self.admin = bearer_metadata(self.h.token("ops", roles=("admin", "user")))
        made = self.run(_in_loop(lambda: self.h.api("par1").CreateInstance(create_request("fuzz-target"))))
        self.instance = made
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.router.close())
        self.run(self.cell.close())
        self.run(self._context.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


async def _in_loop(make: Callable[[], Any]) -> Any:
    """A grpc.aio call made and awaited in the harness's loop (its channels belong to that loop)."""
    return await make()


async def _open(address: str) -> grpc.aio.Channel:
    return open_channel(address)


@pytest.fixture(scope="module")
def background() -> Iterator[Background]:
    with Background() as b:
        yield b


async def _call(
    channel: grpc.aio.Channel,
    service: ServiceDescriptor,
    method: MethodDescriptor,
    body: bytes,
    metadata: Any,
) -> grpc.aio.AioRpcError | None:
    path = f"/{service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path)(body, metadata=metadata, timeout=DEADLINE_S)
            async for _ in stream:
                pass
        else:
            await channel.unary_unary(path)(body, metadata=metadata, timeout=DEADLINE_S)
    except grpc.aio.AioRpcError as exc:
        return exc
    return None


def _check(b: Background, channel: grpc.aio.Channel, service: ServiceDescriptor, method: MethodDescriptor,
           body: bytes, metadata: Any) -> None:  # fmt: skip
    started = time.monotonic()
    error = b.run(_call(channel, service, method, body, metadata), timeout_s=DEADLINE_S + SLACK_S + 5)
    elapsed = time.monotonic() - started
    where = f"{method.full_name} with {len(body)} bytes"
    CODES["OK" if error is None else error.code().name] += 1
    assert elapsed < DEADLINE_S + SLACK_S, f"{where}: answered after {elapsed:.1f}s"
    if error is None:
        return
    if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
        return  # a watch that found its instance streams until its deadline: that is its answer
    assert error.code() not in FORBIDDEN, f"{where}: {error.code().name} {error.details()}"
    details = error.details() or ""
    assert len(details) <= MAX_MESSAGE_CHARS, f"{where}: {len(details)} chars of message"
    if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
        status = rpc_status.from_call(error)
        fields = []
        for detail in status.details if status is not None else ():
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                fields += [v.field for v in bad.field_violations]
        assert fields and all(fields), f"{where}: INVALID_ARGUMENT naming no field: {details}"


def _requests(service: ServiceDescriptor) -> st.SearchStrategy[tuple[MethodDescriptor, Message]]:
    return st.sampled_from(list(service.methods)).flatmap(
        lambda m: st.tuples(st.just(m), messages(m.input_type))
    )


_TOLERATED = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=_TOLERATED)


@FUZZ
@given(call=_requests(COMPUTE))
def test_compute_api_hostile_fields(background: Background, call: tuple[MethodDescriptor, Message]) -> None:
    method, message = call
    _check(background, background.router, COMPUTE, method, message.SerializeToString(), background.user)


@FUZZ
@given(call=_requests(FEDERATION))
def test_federation_api_hostile_fields(
    background: Background, call: tuple[MethodDescriptor, Message]
) -> None:
    method, message = call
    _check(background, background.router, FEDERATION, method, message.SerializeToString(), background.admin)


@FUZZ
@given(call=_requests(CELL))
def test_cell_api_hostile_fields(background: Background, call: tuple[MethodDescriptor, Message]) -> None:
    method, message = call
    _check(background, background.cell, CELL, method, message.SerializeToString(), ())


@FUZZ
@given(
    method=st.sampled_from(
        [(COMPUTE, m) for m in COMPUTE.methods]
        + [(FEDERATION, m) for m in FEDERATION.methods]
        + [(CELL, m) for m in CELL.methods]
    ),
    body=st.binary(max_size=2048),
    who=st.sampled_from(["none", "user", "admin"]),
)
def test_raw_random_bytes_as_the_body(
    background: Background, method: tuple[ServiceDescriptor, MethodDescriptor], body: bytes, who: str
) -> None:
    service, descriptor = method
    channel = background.cell if service is CELL else background.router
    metadata = {"none": (), "user": background.user, "admin": background.admin}[who]
    _check(background, channel, service, descriptor, body, metadata)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=400), junk=st.text(max_size=40), flip=st.integers(0, 400))
def test_tampered_and_truncated_page_tokens(background: Background, cut: int, junk: str, flip: int) -> None:
    b = background
    real = b.run(_first_token(b))
    position = flip % max(1, len(real))
    flipped = real[:position] + ("A" if real[position : position + 1] != "A" else "B") + real[position + 1 :]
    for token in (real[:cut], real + junk, junk + real, flipped):
        if token == real or not token:
            continue
        body = compute_pb2.ListInstancesRequest(page_size=1, page_token=token).SerializeToString()
        _check(b, b.router, COMPUTE, COMPUTE.methods_by_name["ListInstances"], body, b.user)


async def _first_token(b: Background) -> str:
    api = b.h.api("par1")
    for n in range(3 - 0):
        await api.CreateInstance(create_request(f"paged-{n}"))
    page = await api.ListInstances(compute_pb2.ListInstancesRequest(page_size=1))
    assert page.next_page_token
    return str(page.next_page_token)


def test_the_federation_still_serves_after_the_hostile_runs(background: Background) -> None:
    # Last in this module (pytest runs a module's tests in order): every process of the harness kept
    # serving through everything above.
    b = background
    request = compute_pb2.GetInstanceRequest(name=b.instance.name)
    got = b.run(_in_loop(lambda: b.h.api("nyc1").GetInstance(request)))
    assert got.instance_id == b.instance.instance_id
    made = b.run(_in_loop(lambda: b.h.api("par1").CreateInstance(create_request("after-the-fuzz"))))
    assert made.instance_id
    print(f"\nhostile calls: {sum(CODES.values())}, by code: {dict(CODES.most_common())}")
