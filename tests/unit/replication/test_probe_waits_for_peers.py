"""The readiness probe runs its DDL only once the coordinator knows the other replicas and they agree on
a schema (a keyspace created before gossip joined the peers was announced to no one)."""

from __future__ import annotations

from typing import Any

import pytest

from fedlib.errors import Unavailable
from replication.cql.session import _peers_known


class Result:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows


class Session:
    def __init__(self, peers: list[tuple[str, str]], mine: str = "v1") -> None:
        self.peers, self.mine = peers, mine

    async def execute(self, statement: str, *args: Any, **kw: Any) -> Result:
        if "system.local" in statement:
            return Result([{"schema_version": self.mine}])
        return Result([{"peer": p, "schema_version": v} for p, v in self.peers])


REPLICATION = {"eu-west": 1, "us-east": 1, "ap-south": 1}


@pytest.mark.parametrize(
    ("peers", "why"),
    [
        ([], "knows 0 peers, 2 expected"),
        ([("127.0.3.12", "v1")], "knows 1 peers"),
        ([("127.0.3.12", "v1"), ("127.0.3.13", "v0")], "127.0.3.13"),
    ],
)
async def test_not_ready_until_every_peer_is_known_and_agrees(peers: list[tuple[str, str]], why: str) -> None:
    with pytest.raises(Unavailable) as err:
        await _peers_known(Session(peers), REPLICATION, 1.0)  # type: ignore[arg-type]
    assert why in err.value.message


async def test_ready_once_they_are() -> None:
    await _peers_known(Session([("127.0.3.12", "v1"), ("127.0.3.13", "v1")]), REPLICATION, 1.0)  # type: ignore[arg-type]
