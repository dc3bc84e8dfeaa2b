"""`cellctl top`: the federation view, refreshed every --interval seconds until Ctrl-C (or for
--iterations N / --once, so scripts and tests can bound it). One frame per refresh: on a terminal it
redraws in place (rich.live); to a pipe each frame is printed after the previous one; with
--output json each view is one JSON line.

The refresh never blocks: each call has a deadline no longer than the interval (or --timeout when
shorter), and a router that does not answer in time leaves the last view on screen, saying how old it
is and why it was not refreshed. Sites the router cannot reach are part of every view, dimmed, with the
age of what is known of them (cellapi.cli.render_top)."""

from __future__ import annotations

import asyncio
import time

import click
from cellfed.v1 import federation_pb2
from rich.live import Live

from cellapi.cli.config import RawOptions
from cellapi.cli.errors import details_of, exit_code_for
from cellapi.cli.render import to_json_line
from cellapi.cli.render_top import Frame, top_frame
from cellapi.cli.session import Session, run
from fedlib.errors import CellfedError, Unavailable
from fedrpc.status import code_of

MIN_DEADLINE_S = 0.5  # below this a healthy router across a WAN could not answer at all


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _fetch(s: Session, deadline_s: float) -> federation_pb2.ListSitesResponse | str:
    """The view, or why there is none this time (a failed call is shown, never raised)."""
    try:
        return await asyncio.wait_for(s.client.sites(), deadline_s)
    except TimeoutError:
        return f"no answer within {deadline_s:g}s"
    except CellfedError as exc:
        return f"{code_of(exc).name}: {details_of(exc)}"


class _Screen:
    """Where frames go: a live region on a terminal, else one frame after another."""

    def __init__(self, s: Session) -> None:
        self._s = s
        self._live: Live | None = None
        if s.out.is_terminal and not s.config.json:
            self._live = Live(console=s.out, auto_refresh=False, redirect_stderr=False)

    def __enter__(self) -> _Screen:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def show(self, frame: Frame) -> None:
        if self._s.config.json:
            if frame.problem:
                self._s.note(f"warning: {frame.problem}")
            elif frame.view is not None:
                click.echo(to_json_line(frame.view))
            return
        rendered = top_frame(frame)
        if self._live is not None:
            self._live.update(rendered, refresh=True)
            return
        with self._s.out.capture() as captured:
            self._s.out.print(rendered)
        click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")


async def watch_sites(s: Session, interval_s: float, iterations: int | None) -> int:
    """Refreshes until `iterations` frames were shown (None: forever); the exit code says whether the
    last refresh got a view."""
    deadline_s = max(MIN_DEADLINE_S, min(interval_s, s.config.timeout_s))
    view: federation_pb2.ListSitesResponse | None = None
    view_at: int | None = None
    last_error: str | None = None
    shown = 0
    with _Screen(s) as screen:
        while iterations is None or shown < iterations:
            started = time.monotonic()
            got = await _fetch(s, deadline_s)
            if isinstance(got, str):
                last_error = got
            else:
                view, view_at, last_error = got, _now_ms(), None
            screen.show(Frame(view, view_at, _now_ms(), interval_s, last_error))
            shown += 1
            if iterations is None or shown < iterations:
                await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    return 0 if last_error is None else exit_code_for(Unavailable(last_error))


@click.command()
@click.option(
    "--interval", "interval_s", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
    help="Seconds between refreshes (each call's deadline is no longer than this).",
)  # fmt: skip
@click.option("--iterations", type=click.IntRange(min=1), help="Stop after this many refreshes.")
@click.option("--once", is_flag=True, help="One refresh, then exit (= --iterations 1).")
@click.pass_obj
def top(raw: RawOptions, interval_s: float, iterations: int | None, once: bool) -> None:
    """Live view of every site: health, heartbeat and data age, capacity used/free, instances by state,
    req/s, err/s, p99; unreachable sites shown as such with the age of what is known (admin)."""
    if once and iterations not in (None, 1):
        raise click.UsageError("--once and --iterations disagree; give one of them")

    run(raw, lambda s: watch_sites(s, interval_s, 1 if once else iterations))
