"""Instance ids that name their home cell, so a router finds the owner without a global lookup.

Format: ``<cell_id>.<26 chars of Crockford base32>``: 48 bits of milliseconds then 80 random bits (a
ULID), so ids sort by creation time and never collide across cells. The index stays authoritative for
instances that move; the encoded cell is the first guess, not the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedlib.errors import InvalidArgument
from fedlib.names import check_id

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_ULID_LEN = 26


@dataclass(frozen=True)
class InstanceId:
    home_cell: str
    ulid: str

    def __str__(self) -> str:
        return f"{self.home_cell}.{self.ulid}"


def new_instance_id(home_cell: str, now_ms: int, random_bits: int) -> InstanceId:
    """Time and randomness are passed in: callers own the clock and the entropy source."""
    if not 0 <= now_ms < 1 << 48:
        raise ValueError("now_ms out of range")
    value = (now_ms << 80) | (random_bits & ((1 << 80) - 1))
    chars = []
    for _ in range(_ULID_LEN):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return InstanceId(check_id(home_cell, "home_cell"), "".join(reversed(chars)))


def parse_instance_id(text: str, field: str = "instance_id") -> InstanceId:
    cell, sep, ulid = (text or "").rpartition(".")
    if not sep or len(ulid) != _ULID_LEN or any(c not in _ALPHABET for c in ulid):
        raise InvalidArgument(
            f"{field} {text!r} is not an instance id (expected '<cell>.<26 base32 chars>')", field=field
        )
    try:
        check_id(cell, field)
    except InvalidArgument:
        raise InvalidArgument(f"{field} {text!r} has an invalid cell part {cell!r}", field=field) from None
    if _ALPHABET.index(ulid[0]) > 7:  # 26 base32 chars hold 130 bits; a ULID uses 128
        raise InvalidArgument(f"{field} {text!r} is out of range", field=field)
    return InstanceId(cell, ulid)


def created_ms(instance_id: InstanceId) -> int:
    value = 0
    for c in instance_id.ulid:
        value = (value << 5) | _ALPHABET.index(c)
    return value >> 80
