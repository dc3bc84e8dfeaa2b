"""The two clocks a process hands to its pure cores (they never read one themselves, STYLE.md).

Wall clock: timestamps other processes read (heartbeats, updated_at, idempotency records), so it must be
comparable across hosts. Monotonic: ages and intervals measured on one host only (an agent's orphan
grace), where a wall clock stepped by NTP would make a domain look older or younger than it is."""

from __future__ import annotations

import time


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
