"""The router's status page over real HTTP: the server's edges (paths, methods, deadlines, limits) against
an in-process snapshot, then a real federation (tests/federation_harness.py) seen through one more router
started in-process with the page on, rendered by headless Chromium while one site's cell is dead.

The screenshot is kept as test-artifacts/status-page.png; with CELLFED_UPDATE_DOCS=1 it also replaces
docs/status-page.png."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from cellfed.v1 import common_pb2, federation_pb2

from cellapi.auth import KeyRing
from cellapi.client import Client
from cellapi.router.app import RunningRouter, start_router
from cellapi.router.settings import RouterSettings
from cellapi.router.status_http import MAX_REQUEST_BYTES, StatusServer, start_status_server
from fedlib.errors import CellfedError
from localfed.processes import spawn, stop_all, wait_ready
from tests.federation_harness import SITES, Federation, running_federation

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "status-page.png"
DOCS_COPY = ROOT / "docs" / "status-page.png"
UNWELL = {"SUSPECT", "OFFLINE"}


class Sites(HTMLParser):
    """Each site card's data-health and the text of its first health badge."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.health: dict[str, str] = {}
        self.badge: dict[str, str] = {}
        self._site = ""
        self._in_badge = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section" and "data-site" in a:
            self._site = a["data-site"]
            self.health[self._site] = a.get("data-health", "")
        if tag == "span" and a.get("class") == "health" and self._site and self._site not in self.badge:
            self._in_badge = True

    def handle_endtag(self, tag: str) -> None:
        self._in_badge = False if tag == "span" else self._in_badge
        self._site = "" if tag == "section" else self._site

    def handle_data(self, data: str) -> None:
        if self._in_badge:
            self.badge[self._site] = self.badge.get(self._site, "") + data.strip()


def get(port: int, path: str = "/", method: str = "GET") -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read().decode()
    finally:
        conn.close()


async def aget(port: int, path: str = "/", method: str = "GET") -> tuple[int, dict[str, str], str]:
    return await asyncio.to_thread(get, port, path, method)


async def raw(port: int, data: bytes, read_s: float = 5) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_s)
    finally:
        writer.close()


# ---- the HTTP edges, against an in-process snapshot (no federation needed) ----


def tiny_view() -> tuple[federation_pb2.ListSitesResponse, federation_pb2.RttMatrix]:
    sites = federation_pb2.ListSitesResponse(observed_from="par1")
    sites.sites.add(site="par1", health=common_pb2.HEALTHY)
    return sites, federation_pb2.RttMatrix(sites=["par1"])


async def serve(snapshot: Callable[[], Awaitable[Any]] | None = None, **kw: Any) -> StatusServer:
    async def quick() -> Any:
        return tiny_view()

    return await start_status_server("127.0.0.1:0", snapshot or quick, lambda: 0, **kw)


async def test_serves_the_page_and_healthz_only() -> None:
    server = await serve()
    try:
        status, headers, body = await aget(server.port, "/?refresh=1")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store" and 'data-site="par1"' in body
        status, headers, body = await aget(server.port, "/healthz")
        assert (status, headers["content-type"], body) == (200, "text/plain; charset=utf-8", "ok\n")
        assert (await aget(server.port, "/metrics"))[0] == 404
        status, headers, _ = await aget(server.port, "/", "POST")
        assert status == 405 and headers["allow"] == "GET"
        assert (await raw(server.port, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        too_big = b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST_BYTES + b"\r\n\r\n"
        assert (await raw(server.port, too_big)).startswith(b"HTTP/1.1 431 ")
    finally:
        await server.stop()


async def test_every_request_has_a_deadline() -> None:
    async def slow() -> Any:
        await asyncio.sleep(30)

    server = await serve(slow, deadline_s=0.3)
    try:
        started = time.monotonic()
        assert (await aget(server.port))[0] == 503  # the view did not come in time
        assert (await raw(server.port, b"GET / HT")).startswith(b"HTTP/1.1 408 ")  # nor did the request
        assert time.monotonic() - started < 3
    finally:
        await server.stop()


async def test_a_failing_view_is_a_503_and_too_many_at_once_are_turned_away() -> None:
    release = asyncio.Event()

    async def failing() -> Any:
        await release.wait()
        raise RuntimeError("directory is away")

    server = await serve(failing)
    server.max_connections = 1
    try:
        first = asyncio.create_task(aget(server.port))
        await asyncio.sleep(0.2)
        status, headers, _ = await aget(server.port)
        assert status == 503 and headers["retry-after"] == "1"
        release.set()
        status, _, body = await first
        assert status == 503 and "could not be built" in body and "directory" not in body
    finally:
        await server.stop()


async def test_stop_ends_open_connections() -> None:
    server = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\n")  # never finished
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 2
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


# ---- a real federation, seen by one more par1 router with the page on, rendered by Chromium ----


@pytest.fixture(scope="module")
async def fed(cassandra_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    async with running_federation(
        tmp_path_factory.mktemp("federation"), cassandra_cluster.contact_points
    ) as f:
        yield f


@pytest.fixture(scope="module")
async def observer(fed: Federation) -> AsyncIterator[RunningRouter]:
    """A second router at par1 (same site row as the harness's), dialling other sites' cells through
    par1's WAN-emulating proxies, with the status page on a free port."""
    from replication.cql.session import connect
    from replication.cql.store import CqlStore

    par = next(s for s in SITES if s.site == "par1")
    dial = fed.dials["par1"]
    settings = RouterSettings(
        router_id="par1-status", site_id="par1", region=par.region, lat=par.lat, lon=par.lon,
        advertise="", dial=MappingProxyType(dial),
    )  # fmt: skip
    session = await asyncio.to_thread(connect, fed.contact_points, par.region)
    store = CqlStore(session, keyspace=fed.keyspace, region=par.region)
    running = await start_router(
        settings, store, KeyRing(fed.root / "keys"), listen="127.0.0.1:0", status_listen="127.0.0.1:0"
    )
    try:
        yield running
    finally:
        await running.stop()
        await session.aclose()


async def wait_page(port: int, done: Callable[[Sites], bool], what: str, timeout_s: float = 60) -> Sites:
    deadline = time.monotonic() + timeout_s
    while True:
        status, _, body = await aget(port)
        sites = Sites(body) if status == 200 else Sites("")
        if done(sites):
            return sites
        assert time.monotonic() < deadline, f"the page never showed {what}: {sites.health}"
        await asyncio.sleep(0.5)


async def held_door(port: int, hold_s: float) -> asyncio.Server:
    """A way to the status page that holds each connection `hold_s` before letting it through, so the page
    is built after Chromium's start (CPU-heavy on a 2-core machine, which delays health probes and reads
    as DEGRADED for a few seconds) is over rather than during it."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()

    async def through(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(hold_s)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        finally:
            writer.close()

    return await asyncio.start_server(through, "127.0.0.1", 0)


async def some_traffic(fed: Federation) -> None:
    """Listings and misses (NOT_FOUND) through every router: non-zero request and error rates."""
    for site in SITES:
        client = fed.client(site.site)
        try:
            for _ in range(10):
                await client.list()
            for other in SITES:
                with contextlib.suppress(CellfedError):
                    await client.get(f"{other.cell}.00000000000000000000000000")
        finally:
            await client.close()


def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else "")
    if not found:
        pytest.skip("Debian's chromium is not installed (dev/setup installs it: apt-get install chromium)")
    return found


async def run_chromium(url: str, profile: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        # At the lowest CPU priority: Chromium's start would otherwise delay the federation's health
        # probes on this small machine, and the page would truthfully show healthy sites as DEGRADED.
        "nice",
        "-n",
        "19",
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.mark.cassandra
@pytest.mark.libvirt
async def test_the_page_shows_every_site_healthy(observer: RunningRouter) -> None:
    port = observer.status_port
    assert port is not None
    names = {s.site for s in SITES}
    sites = await wait_page(
        port, lambda p: set(p.health) == names and set(p.health.values()) == {"HEALTHY"}, "all healthy"
    )
    assert sites.badge == {n: "HEALTHY" for n in names}


def rtt_values(body: str) -> dict[str, list[str]]:
    """The RTT heatmap's rows as shown: from-site -> its cells' texts."""
    table = body[body.index('<table class="rtt"') :]
    rows = re.findall(r"<tr><th[^>]*>([\w-]+)</th>(.*?)</tr>", table)
    return {site: re.findall(r'<td style="[^"]*">([^<]*)</td>', cells) for site, cells in rows}


@pytest.mark.cassandra
@pytest.mark.libvirt
async def test_the_whole_rtt_matrix_comes_from_published_rows_without_a_token(
    fed: Federation, observer: RunningRouter
) -> None:
    """Every router publishes its row with its heartbeat; the token-less page and the operator API both
    show all of them, each measured by its own router (nyc1's row sees Paris across the emulated WAN)."""
    admin = Client([f"127.0.0.1:{observer.port}"], fed.tokens["admin"])
    names = sorted(s.site for s in SITES)
    deadline = time.monotonic() + 30
    try:
        while True:
            matrix = await admin.rtt_matrix()
            rows = {r.from_site: list(r.rtt_ms) for r in matrix.rows}
            if set(rows) == set(names) and all(v >= 0 for row in rows.values() for v in row):
                break
            assert time.monotonic() < deadline, f"rows never all measured: {rows}"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    assert list(matrix.sites) == names
    col = {s: i for i, s in enumerate(names)}
    # nyc1's router reaches the Paris cell through its own delay proxy; its own cell is a loopback hop.
    # The emulated WAN delay is a floor for the remote figure; the local one is only nearer than it (an
    # absolute bound on a loopback probe fails on a loaded machine or under coverage's tracing).
    assert rows["nyc1"][col["par1"]] >= 0.8 * fed.rtt[("nyc1", "par1")]
    assert rows["nyc1"][col["nyc1"]] < rows["nyc1"][col["par1"]]
    assert rows["sin1"][col["nyc1"]] >= 0.8 * fed.rtt[("sin1", "nyc1")]
    by_site = {r.from_site: r for r in matrix.rows}
    assert not by_site["par1"].HasField("data_age")  # the answering router's own row is live
    assert 0 <= by_site["nyc1"].data_age.ToMilliseconds() < 10_000
    assert observer.status_port is not None
    _, _, body = await aget(observer.status_port)
    shown = rtt_values(body)
    assert set(shown) == set(names) and "?" not in [v for row in shown.values() for v in row], shown
    assert "<td>no report</td>" not in body and "this router, live" in body


@pytest.mark.cassandra
@pytest.mark.libvirt
async def test_router_serve_announces_its_status_port(fed: Federation) -> None:
    par = next(s for s in SITES if s.site == "par1")
    args = ["router", "serve", "--router-id", "par1-cli", "--site", "par1", "--region", par.region]
    args += ["--lat", str(par.lat), "--lon", str(par.lon), "--listen", "127.0.0.1:0"]
    args += ["--cassandra", ",".join(fed.contact_points), "--local-dc", par.region]
    args += ["--global-keyspace", fed.keyspace, "--keys-dir", str(fed.root / "keys")]
    proc = spawn([*args, "--status-listen", "127.0.0.1:0"], fed.root / "logs" / "par1-cli-router.log")
    try:
        ready = await asyncio.to_thread(wait_ready, proc, "router par1-cli")
        assert {"router", "port", "metrics", "status"} <= set(ready), ready
        assert (await aget(int(ready["status"]), "/healthz"))[2] == "ok\n"
        status, _, body = await aget(int(ready["status"]))
        assert status == 200 and set(Sites(body).health) == {s.site for s in SITES}
    finally:
        await asyncio.to_thread(stop_all, [proc])


@pytest.mark.cassandra
@pytest.mark.libvirt
async def test_chromium_shows_a_dead_cell_as_unwell_and_the_others_healthy(
    fed: Federation, observer: RunningRouter, tmp_path: Path
) -> None:
    port = observer.status_port
    assert port is not None
    await run_chromium("about:blank", tmp_path / "profile", "--dump-dom")  # a warm profile starts faster
    await wait_page(port, lambda p: set(p.health.values()) == {"HEALTHY"} and len(p.health) == 3, "healthy")
    await some_traffic(fed)  # so every card has request and error rates to show
    fed.kill("cell:sin1")
    await wait_page(port, lambda p: p.health.get("sin1") in UNWELL, "sin1 unwell")
    door = await held_door(port, hold_s=4)
    url = f"http://127.0.0.1:{door.sockets[0].getsockname()[1]}/"
    shot, seen = tmp_path / "status-page.png", []
    deadline = time.monotonic() + 90
    try:
        while True:  # each load is a fresh page; a probe delayed by a busy machine can read DEGRADED
            await run_chromium(url, tmp_path / "profile", f"--screenshot={shot}")
            dom = Sites(await run_chromium(url, tmp_path / "profile", "--dump-dom"))
            seen.append(dom.badge)
            if dom.badge.get("par1") == dom.badge.get("nyc1") == "HEALTHY" or time.monotonic() > deadline:
                break
            await asyncio.sleep(3)
    finally:
        door.close()
        await door.wait_closed()
    print(f"\nsite health in Chromium's DOM, per load: {seen}")
    assert set(dom.health) == {"par1", "nyc1", "sin1"}, dom.health
    assert dom.badge["sin1"] in UNWELL and dom.health["sin1"] == dom.badge["sin1"], seen
    assert dom.badge["par1"] == dom.badge["nyc1"] == "HEALTHY", seen
    body = (await aget(port))[2]
    assert body.count('class="traffic"') == 3  # every site's last report, the dead cell's site's too
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
    if os.environ.get("CELLFED_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, DOCS_COPY)
