"""Following an instance's events: `create --wait` (until ACTIVE, ERROR or a deadline, with a spinner on
a terminal) and `watch` (every event until DELETED or Ctrl-C).

Every watch call has a deadline, so a long follow is a series of calls; each new call starts with the
current state, which is skipped when its version was already shown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import click
from cellfed.v1 import common_pb2
from rich.console import Console
from rich.status import Status
from rich.text import Text

from cellapi.cli.errors import EXIT_FAILURE, EXIT_INSTANCE_ERROR, EXIT_WAIT_TIMEOUT
from cellapi.cli.render import event_line, status_text, to_json_line
from cellapi.cli.session import Session
from fedlib.errors import DeadlineExceeded

WATCH_CALL_S = 300.0  # one watch call; `watch` reconnects after it
RECONNECT_PAUSE_S = 0.2  # between calls, so a stream that keeps ending at once cannot spin
_SETTLED = {common_pb2.ACTIVE, common_pb2.ERROR, common_pb2.DELETING, common_pb2.DELETED}


async def wait_active(
    s: Session, inst: common_pb2.Instance, wait_s: float
) -> tuple[int, common_pb2.Instance]:
    """(exit code, last known instance): 0 at ACTIVE; EXIT_INSTANCE_ERROR at ERROR (with the fault);
    EXIT_WAIT_TIMEOUT when `wait_s` passes first; EXIT_FAILURE if it is deleted meanwhile."""
    latest = inst
    with _progress(s.err, inst.instance_id) as show:
        try:
            async with asyncio.timeout(wait_s):
                while latest.status not in _SETTLED:
                    latest = await _follow_once(s, latest, show)
        except TimeoutError:
            pass
    return _outcome(s, latest, wait_s), latest


async def _follow_once(s: Session, latest: common_pb2.Instance, show: _Show) -> common_pb2.Instance:
    try:
        async for event in s.client.watch(latest.instance_id, timeout_s=WATCH_CALL_S):
            latest = event.instance
            show(f"{status_text(latest)}: {event.reason}")
            if latest.status in _SETTLED:
                return latest
    except DeadlineExceeded:
        pass  # the watch call's own deadline: follow on with a new one
    await asyncio.sleep(RECONNECT_PAUSE_S)
    return latest


def _outcome(s: Session, inst: common_pb2.Instance, wait_s: float) -> int:
    iid = inst.instance_id
    if inst.status == common_pb2.ACTIVE:
        return 0
    if inst.status == common_pb2.ERROR:
        s.note(f"error: instance {iid} is ERROR: {inst.fault or 'no fault recorded'}")
        return EXIT_INSTANCE_ERROR
    if inst.status in (common_pb2.DELETING, common_pb2.DELETED):
        s.note(f"error: instance {iid} is {status_text(inst)}: it was deleted while waiting")
        return EXIT_FAILURE
    s.note(
        f"error: DEADLINE_EXCEEDED: {iid} is still {status_text(inst)} after {wait_s:g}s; "
        f"it may still become ACTIVE: cellctl watch {iid}"
    )
    return EXIT_WAIT_TIMEOUT


class _Show:
    """Shows progress: updates a spinner on a terminal, else one stderr line per change."""

    def __init__(self, console: Console, instance_id: str) -> None:
        self._console, self._iid, self._last = console, instance_id, ""
        self.status: Status | None = None

    def __call__(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.status is not None:
            self.status.update(Text(f"waiting for {self._iid} to be ACTIVE: {text}"))
        else:
            click.echo(f"waiting for {self._iid}: {text}", err=True)


@contextlib.contextmanager
def _progress(console: Console, instance_id: str) -> Iterator[_Show]:
    show = _Show(console, instance_id)
    if not console.is_terminal:
        yield show
        return
    with console.status(Text(f"waiting for {instance_id} to be ACTIVE")) as status:
        show.status = status
        yield show


async def follow(s: Session, instance_id: str) -> int:
    """Prints every event (a line, or a JSON line with --output json) until the instance is DELETED."""
    shown_version: int | None = None
    while True:
        first = True
        try:
            async for event in s.client.watch(instance_id, timeout_s=WATCH_CALL_S):
                inst = event.instance
                if first and inst.version == shown_version:
                    first = False
                    continue  # a reconnect starts with the current state: already shown
                first, shown_version = False, inst.version
                s.line(to_json_line(event) if s.config.json else event_line(event))
                if inst.status == common_pb2.DELETED:
                    return 0
        except DeadlineExceeded:
            pass  # the watch call's own deadline: reconnect
        await asyncio.sleep(RECONNECT_PAUSE_S)
