"""The one CQL session type of cellfed: connect with bounded retries, execute without blocking asyncio.

Public API (kept stable for replication.cql.migrate / replication.cql.store):

- `connect(contact_points, local_dc, *, port=9042, timeout_s=10.0, retries=3) -> CqlSession`
  Blocking (the driver's connect blocks): from async code call it via `asyncio.to_thread`.
- `CqlSession.execute(statement, params=None, *, consistency=None, timeout_s=None, serial_consistency=None,
  idempotent=False, fetch_size=None, paging_state=None) -> CqlResult`  (async)
- `CqlSession.prepare(query) -> PreparedStatement`  (async, cached per query string)
- `CqlSession.close()` / `await CqlSession.aclose()`
- `probe_write_all(session, keyspace="cellfed_probe", *, replication, deadline_s=60.0)`  (async)

Consistency levels are given by name ("LOCAL_QUORUM", "LOCAL_SERIAL", ...). Driver errors never leave this
module: they become fedlib errors (Unavailable, DeadlineExceeded, StoreError, InvalidArgument) with the
driver's exception as __cause__.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel, DriverException, InvalidRequest, OperationTimedOut, Timeout
from cassandra import Unavailable as DriverUnavailable
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, ResultSet
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, SimpleStatement, Statement, dict_factory

from fedlib.errors import CellfedError, DeadlineExceeded, InvalidArgument, StoreError, Unavailable

log = logging.getLogger(__name__)

__all__ = ["CqlResult", "CqlSession", "PreparedStatement", "connect", "probe_write_all"]

# Cassandra 2.1 speaks native protocol v3 at most; current Cassandra still accepts v3.
PROTOCOL_VERSION = 3
# A driver host that went away is retried quickly at first but never hammered: a restarted local node is
# back in seconds. The cap is what a site waits, after its DC's node returns, before it can write again
# (with the old 30 s cap, the disconnection matrix saw a site still unable to create right after its
# node came back from a ~90 s outage); only local-DC hosts have
# pools (remote ones are IGNORED by the DC-aware policy), so a few attempts every 5 s cost nothing.
_RECONNECT = ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0)
# How long past the driver's own timeout we wait before declaring its callback lost.
_BACKSTOP_S = 5.0


@dataclass(frozen=True)
class CqlResult:
    """One page of rows (dicts keyed by column name) and the opaque state to fetch the next, if any."""

    rows: list[dict[str, Any]]
    paging_state: bytes | None = None

    @property
    def applied(self) -> bool:
        """For a lightweight transaction (IF ...): whether it applied. True for other statements."""
        return bool(self.rows[0].get("[applied]", True)) if self.rows else True


def connect(
    contact_points: Sequence[str],
    local_dc: str,
    *,
    port: int = 9042,
    timeout_s: float = 10.0,
    retries: int = 3,
) -> CqlSession:
    """A session whose requests go to `local_dc` only (token-aware), default consistency LOCAL_QUORUM.

    Tries `retries + 1` times with exponential backoff; on failure raises fedlib Unavailable naming every
    address tried. Blocking.
    """
    if not contact_points:
        raise InvalidArgument("contact_points is empty", field="contact_points")
    tried = ", ".join(f"{host}:{port}" for host in contact_points)
    delay, last_error = 0.5, "no attempt made"
    for attempt in range(retries + 1):
        cluster = _make_cluster(list(contact_points), local_dc, port, timeout_s)
        try:
            return CqlSession(cluster, cluster.connect(), local_dc, timeout_s)
        except (NoHostAvailable, DriverException, OSError) as exc:
            cluster.shutdown()
            last_error = f"{type(exc).__name__}: {exc}"
            log.info(
                "cql connect attempt %d to %s (dc %s) failed: %s", attempt + 1, tried, local_dc, last_error
            )
        if attempt < retries:
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise Unavailable(
        f"cassandra dc {local_dc}: no connection after {retries + 1} attempts to {tried}: {last_error}",
        field="contact_points",
    )


def _make_cluster(contact_points: list[str], local_dc: str, port: int, timeout_s: float) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=timeout_s,
        row_factory=dict_factory,
    )
    return Cluster(
        contact_points=contact_points,
        port=port,
        protocol_version=PROTOCOL_VERSION,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout_s,
        control_connection_timeout=timeout_s,
        reconnection_policy=_RECONNECT,
    )


class CqlSession:
    """A driver session pinned to one DC. Safe to share between tasks of one or several event loops."""

    def __init__(self, cluster: Cluster, session: Any, local_dc: str, timeout_s: float) -> None:
        self._cluster = cluster
        self._session = session
        self._prepared: dict[str, PreparedStatement] = {}
        self.local_dc = local_dc
        self.timeout_s = timeout_s

    async def execute(
        self,
        statement: str | Statement | PreparedStatement,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        consistency: str | None = None,
        timeout_s: float | None = None,
        serial_consistency: str | None = None,
        idempotent: bool = False,
        fetch_size: int | None = None,
        paging_state: bytes | None = None,
    ) -> CqlResult:
        """Run one statement and return its first page. Never blocks the event loop.

        A str statement takes `%s` placeholders, a prepared one `?`; a Statement object (e.g. a batch) is
        sent as is, with the given settings applied to it. `consistency` defaults to LOCAL_QUORUM,
        `serial_consistency` (for IF ...) to LOCAL_SERIAL, `timeout_s` to the session's. Mark
        `idempotent=True` only for statements safe to run twice (the driver may then retry them).
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        done: asyncio.Future[CqlResult] = loop.create_future()
        try:
            stmt, bind_params = _statement(statement, params)
            _configure(stmt, consistency, serial_consistency, fetch_size, idempotent)
            response = self._session.execute_async(
                stmt, bind_params, timeout=timeout, paging_state=paging_state
            )
        except Exception as exc:  # bad parameters, or a session already shut down
            raise translate(exc, self.local_dc) from exc

        def on_rows(rows: list[dict[str, Any]]) -> None:  # runs on a driver thread
            result = CqlResult(rows=list(rows or []), paging_state=ResultSet(response, rows).paging_state)
            _settle(loop, done, result, None)

        def on_error(exc: BaseException) -> None:  # runs on a driver thread
            _settle(loop, done, None, exc)

        response.add_callbacks(on_rows, on_error)
        try:
            return await asyncio.wait_for(done, timeout + _BACKSTOP_S)
        except TimeoutError:
            raise DeadlineExceeded(f"cassandra dc {self.local_dc}: no answer in {timeout}s") from None
        except CellfedError:
            raise
        except Exception as exc:
            raise translate(exc, self.local_dc) from exc

    async def prepare(self, query: str) -> PreparedStatement:
        """The prepared form of `query`, prepared once per session (the driver's prepare blocks: a thread)."""
        prepared = self._prepared.get(query)
        if prepared is None:
            try:
                prepared = await asyncio.to_thread(self._session.prepare, query)
            except Exception as exc:
                raise translate(exc, self.local_dc) from exc
            self._prepared[query] = prepared
        return prepared

    def close(self) -> None:
        """Shut the driver down (blocking, about a second)."""
        self._cluster.shutdown()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def _statement(
    statement: str | Statement | PreparedStatement, params: Sequence[Any] | Mapping[str, Any] | None
) -> tuple[Statement, Any]:
    """The statement to send and the parameters the driver should bind itself (None when pre-bound)."""
    if isinstance(statement, PreparedStatement):
        # Bind here: a prepared statement bound by the driver would ignore our per-call settings.
        return statement.bind(params or ()), None
    if isinstance(statement, str):
        return SimpleStatement(statement), params
    return statement, params


def _configure(
    stmt: Statement,
    consistency: str | None,
    serial_consistency: str | None,
    fetch_size: int | None,
    idempotent: bool,
) -> None:
    if consistency is not None:
        stmt.consistency_level = _level(consistency, "consistency")
    if serial_consistency is not None:
        stmt.serial_consistency_level = _level(serial_consistency, "serial_consistency")
    if fetch_size is not None:
        stmt.fetch_size = fetch_size
    if idempotent:
        stmt.is_idempotent = True


def _level(name: str, what: str) -> int:
    try:
        return int(ConsistencyLevel.name_to_value[name.upper()])
    except KeyError:
        raise InvalidArgument(f"{what} {name!r} is not a Cassandra consistency level", field=what) from None


def _settle(
    loop: asyncio.AbstractEventLoop,
    done: asyncio.Future[CqlResult],
    result: CqlResult | None,
    exc: BaseException | None,
) -> None:
    def apply() -> None:
        if done.done():  # the caller gave up (backstop or cancellation) before the driver answered
            return
        if exc is not None:
            done.set_exception(exc)
        else:
            assert result is not None
            done.set_result(result)

    # RuntimeError: the loop closed while the request was in flight, so nobody is waiting.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(apply)


def translate(exc: BaseException, local_dc: str) -> CellfedError:
    """Map a driver exception to the cellfed error tree; the message keeps the driver's detail."""
    where = f"cassandra dc {local_dc}"
    if isinstance(exc, CellfedError):
        return exc
    if isinstance(exc, DriverUnavailable | NoHostAvailable):
        return Unavailable(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, Timeout | OperationTimedOut):
        # A write timeout does not say the write failed: it may still apply (retry only idempotent writes).
        return DeadlineExceeded(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, InvalidRequest):
        return StoreError(f"{where}: invalid CQL: {exc}")
    return StoreError(f"{where}: {type(exc).__name__}: {exc}")


_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


async def probe_write_all(
    session: CqlSession,
    keyspace: str = "cellfed_probe",
    *,
    replication: Mapping[str, int],
    deadline_s: float = 60.0,
) -> None:
    """Readiness: a keyspace over every DC in `replication` ({dc: rf}), one row written and read at CL.ALL.

    With rf equal to each DC's node count, success means every node is up and sees every other one: the
    driver alone cannot tell (a DC-aware session never marks remote hosts up). Retries until `deadline_s`,
    then raises Unavailable with the last error.
    """
    if not _KEYSPACE.match(keyspace):
        raise InvalidArgument(f"keyspace {keyspace!r} is not a valid keyspace name", field="keyspace")
    if not replication or not all(_DC.match(dc) and rf >= 1 for dc, rf in replication.items()):
        raise InvalidArgument(
            f"replication {dict(replication)!r} needs DC names and rf >= 1", field="replication"
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    attempts = 0
    while True:
        attempts += 1
        try:
            await _probe_once(session, keyspace, replication, min(10.0, max(1.0, deadline - loop.time())))
            log.info(
                "probe write at ALL over %s succeeded after %d attempt(s)", sorted(replication), attempts
            )
            return
        except CellfedError as exc:
            if loop.time() + 0.5 >= deadline:
                raise Unavailable(
                    f"cassandra: probe write at ALL over dcs {sorted(replication)} failed for {deadline_s}s "
                    f"({attempts} attempts); last error: {exc.message}"
                ) from exc
        await asyncio.sleep(0.5)


async def _peers_known(session: CqlSession, replication: Mapping[str, int], limit_s: float) -> None:
    """The coordinator knows at least the other replicas' nodes (gossip has joined them) and they agree
    on one schema. The probe's DDL must not run before: the CQL port opens before gossip settles
    (`skip_wait_for_gossip_to_settle=0`), and a keyspace created while the coordinator knew no peer was
    announced to no one. Seen here: the peers then never learned it, dropped every mutation for the
    unknown table ("UnknownColumnFamilyException ... closing", which also closes the link), and the
    probe timed out for its whole deadline, 2 of some 30 starts."""
    local = await session.execute("SELECT schema_version FROM system.local", timeout_s=limit_s)
    peers = await session.execute("SELECT peer, schema_version FROM system.peers", timeout_s=limit_s)
    needed = sum(replication.values()) - 1
    mine = local.rows[0]["schema_version"] if local.rows else None
    if len(peers.rows) < needed:
        raise Unavailable(f"cassandra: the coordinator knows {len(peers.rows)} peers, {needed} expected")
    behind = [str(r["peer"]) for r in peers.rows if r["schema_version"] != mine]
    if mine is None or behind:
        raise Unavailable(f"cassandra: schema not agreed yet with {', '.join(sorted(behind)) or 'itself'}")


async def _probe_once(
    session: CqlSession, keyspace: str, replication: Mapping[str, int], limit_s: float
) -> None:
    await _peers_known(session, replication, limit_s)
    dcs = ", ".join(f"'{dc}': {rf}" for dc, rf in sorted(replication.items()))
    await session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', {dcs}}}",
        timeout_s=max(limit_s, 10.0),  # DDL waits for schema agreement
    )
    await session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.probe (id text PRIMARY KEY, value text)",
        timeout_s=max(limit_s, 10.0),
    )
    key, value = f"probe-{session.local_dc}", uuid.uuid4().hex
    await session.execute(
        f"INSERT INTO {keyspace}.probe (id, value) VALUES (%s, %s)",
        (key, value),
        consistency="ALL",
        timeout_s=limit_s,
        idempotent=True,
    )
    result = await session.execute(
        f"SELECT value FROM {keyspace}.probe WHERE id = %s", (key,), consistency="ALL", timeout_s=limit_s
    )
    if not result.rows or result.rows[0]["value"] != value:
        raise Unavailable(f"cassandra: probe row {key} read back at ALL did not match the write")
