"""Whatever an error message holds, the status on the wire stays far below gRPC's metadata limit, so an
INVALID_ARGUMENT never turns into RESOURCE_EXHAUSTED for a long bad value."""

from __future__ import annotations

from google.rpc import error_details_pb2

from fedlib.errors import InvalidArgument
from fedrpc.status import MAX_MESSAGE_CHARS, to_rpc_status, wire_text


def test_a_long_message_is_cut_on_the_wire_saying_so() -> None:
    status = to_rpc_status(InvalidArgument("bad: " + "y" * 50_000, field="display_name"))
    assert len(status.message) <= MAX_MESSAGE_CHARS and "more chars" in status.message
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert len(bad.field_violations[0].description) <= MAX_MESSAGE_CHARS
    assert len(status.SerializeToString()) < 4_000


def test_a_short_message_is_sent_as_it_is() -> None:
    assert wire_text("no room in par1-c1") == "no room in par1-c1"
