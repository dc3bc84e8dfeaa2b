"""The in-memory twin's own semantics (the contract suite checks it agrees with Cassandra)."""

from __future__ import annotations

from replication.memory import ManualClock, MemoryStore, _Table
from replication.model import RouterMember


def test_table_last_write_wins_and_tombstones_win_ties() -> None:
    clock = ManualClock()
    t: _Table[str, str] = _Table(clock.now_ms)
    t.write("k", "new", 20)
    t.write("k", "old", 10)
    assert t.get("k") == "new"
    t.write("k", None, 20)  # a delete at the same timestamp wins
    assert t.get("k") is None
    t.write("k", "again", 20)
    assert t.get("k") is None
    t.write("k", "later", 21)
    assert t.get("k") == "later"


def test_ttl_follows_the_injected_clock() -> None:
    clock = ManualClock()
    t: _Table[str, str] = _Table(clock.now_ms)
    t.write("k", "v", t.now_us(), ttl_s=10)
    clock.advance(9.999)
    assert t.get("k") == "v"
    clock.advance(0.001)
    assert t.get("k") is None
    assert list(t.live()) == []


def test_generated_timestamps_increase_even_when_the_clock_stands_still() -> None:
    t: _Table[str, str] = _Table(ManualClock().now_ms)
    assert t.now_us() < t.now_us() < t.now_us()


async def test_store_wires_one_clock() -> None:
    clock = ManualClock()
    store = MemoryStore(clock.now_ms, region="eu-west")
    await store.routers.heartbeat(RouterMember("r1", "par1", "r1:7000", clock.now_ms()), ttl_s=5)
    assert [m.router_id for m in await store.routers.live_members()] == ["r1"]
    clock.advance(5)
    assert await store.routers.live_members() == []
