"""Guest MAC addresses, generated without coordination and never reused, and the SLAAC (EUI-64) IPv6
address a MAC gives on a /64.

Layout, 48 bits: the first octet's low bits say locally administered (1) unicast (0), as RFC 7042 asks of
addresses no vendor assigned; then 22 bits naming the cell (a hash of its id) and 24 bits of the cell's
own sequence (`mac_for(cell, n)`, n from 0, kept by the cell and never handed out twice). Within a cell,
so within the L2 segment of any of its provider networks, no two guests ever share a MAC; the cell part
keeps addresses of different cells apart should their segments ever be bridged (a collision of two cells'
22 bits is possible among thousands of cells, hence: the guarantee is the per-cell sequence, the hash is
a margin). 2^24 MACs per cell: at 1,000 builds a day, 45 years."""

from __future__ import annotations

import hashlib
import ipaddress

from fedlib.errors import InvalidArgument, ResourceExhausted

SEQUENCE_BITS = 24
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
_CELL_BITS = 22


def mac_for(cell_id: str, sequence: int) -> str:
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise InvalidArgument(f"MAC sequence {sequence!r} must be a whole number >= 0", field="sequence")
    if sequence > MAX_SEQUENCE:
        raise ResourceExhausted(f"cell {cell_id} has handed out all {MAX_SEQUENCE + 1} of its MAC addresses")
    cell = int.from_bytes(hashlib.blake2b(cell_id.encode(), digest_size=4).digest(), "big") >> (
        32 - _CELL_BITS
    )
    # 6 bits of the first octet come from the cell, then its 0b10 flags: locally administered, unicast.
    value = (cell << SEQUENCE_BITS) | sequence  # 46 bits
    first = ((value >> 40) << 2 | 0b10) & 0xFF
    rest = (value & ((1 << 40) - 1)).to_bytes(5, "big")
    return ":".join(f"{b:02x}" for b in (first, *rest))


def parse_mac(text: str) -> bytes:
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise InvalidArgument(f"MAC {text!r:.40} must be six lowercase hex octets joined by ':'", field="mac")
    return bytes(int(p, 16) for p in parts)


def eui64_address(prefix: ipaddress.IPv6Network, mac: str) -> ipaddress.IPv6Address:
    """The SLAAC address (RFC 4862, modified EUI-64 of RFC 4291 appendix A) of `mac` on a /64."""
    if prefix.prefixlen != 64:
        raise InvalidArgument(f"prefix {prefix} must be a /64 for EUI-64 addresses", field="prefix")
    octets = parse_mac(mac)
    interface_id = bytes([octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
    return ipaddress.IPv6Address(int(prefix.network_address) | int.from_bytes(interface_id, "big"))
