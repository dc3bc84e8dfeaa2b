"""Hypothesis strategies for hostile requests, built from the proto descriptors, so every field of every
RPC is covered and a field added later is fuzzed without anyone remembering to.

Values lean on what broke servers before: empty, huge (past gRPC's metadata limit if echoed), unicode
and control characters, a trailing newline, negative and 64-bit-edge numbers, unknown enum values,
oversized maps and repeated fields, names that almost parse ("instances/..", "sites/x/cells/"), and page
tokens that are garbage or almost valid."""

from __future__ import annotations

from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

_NAMEISH = [
    "",
    " ",
    "x\n",
    "instances/",
    "instances/par1-c1.",
    "instances/par1-c1.01j00000000000000000000000",
    "instances/../../etc",
    "sites/",
    "sites/par1",
    "sites/par1/cells/",
    "sites/nyc1/cells/par1-c1",
    "sites/par1/cells/par1-c1/hosts/",
    "sites/par1/cells/par1-c1/hosts/h1",
    "par1-c1",
    "acme",
    "m1.tiny",
    "debian-12",
    "create_time desc",
    "status=ACTIVE",
    "site=par1 AND status=ACTIVE",
    "name=web*",
    "address=203.0.113.7",
    "\x00",
    "\u202e",
    "é",
    "名前",
    "😀" * 10,
]
_HUGE = st.sampled_from([64, 4096, 70_000]).map(lambda n: "A" * n)
STRINGS = st.one_of(
    st.sampled_from(_NAMEISH),
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    _HUGE,
)
INTS = st.one_of(
    st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 1000, 1001, 500, 501]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
UINTS = st.one_of(
    st.sampled_from([0, 1, 2**32 - 1, 2**64 - 1]), st.integers(min_value=0, max_value=2**64 - 1)
)
BYTES = st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"\xff" * 70_000]))
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e308, -91.0, 181.0])
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_BYTES,):
        return BYTES
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return FLOATS.map(lambda v: v if t == FieldDescriptor.TYPE_DOUBLE else _as_float32(v))
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from([-1, 99, 2**31 - 1]))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return UINTS.map(lambda v: v % 2**32)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return UINTS
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return INTS.map(lambda v: (v + 2**31) % 2**32 - 2**31)
    return INTS


def _as_float32(value: float) -> float:
    import struct

    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type, each field set or not, nested messages to a few levels."""
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            if value.message_type is not None:
                continue  # no map of messages in our APIs' requests
            fields[field.name] = st.dictionaries(_scalar(key), _scalar(value), max_size=70)
        elif field.message_type is not None:
            if depth >= 3 or field.message_type.full_name.startswith("google.protobuf."):
                continue  # timestamps and durations: the APIs take none in requests
            inner = messages(field.message_type, depth + 1)
            fields[field.name] = st.lists(inner, max_size=3) if _repeated(field) else inner
        elif _repeated(field):
            fields[field.name] = st.lists(_scalar(field), max_size=600)
        else:
            fields[field.name] = _scalar(field)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for name, strategy in fields.items():
            if not draw(st.booleans()):
                continue
            value = draw(strategy)
            target = getattr(message, name)
            if isinstance(value, dict):
                target.update(value)
            elif isinstance(value, list):
                if value and isinstance(value[0], Message):
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif isinstance(value, Message):
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return build()


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
