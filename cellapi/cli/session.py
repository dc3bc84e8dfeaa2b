"""Runs one `cellctl` command: resolves the global options, opens the SDK client (probing the routers when
there is a choice, so the nearest is used), shows results as tables or JSON, and turns every gRPC failure
(the SDK raises the error tree) into one `error: <CODE>: <details>` line and an exit code
(cellapi.cli.errors), never a traceback.

Results go to stdout; notes, warnings, progress and errors go to stderr, so `--output json` stays
parseable whatever else is said."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import click
from google.protobuf.message import Message
from rich.console import Console, RenderableType

from cellapi.cli.config import CliConfig, RawOptions, resolve
from cellapi.cli.errors import EXIT_INTERRUPTED, error_line, exit_code_for
from cellapi.cli.render import to_json
from cellapi.client import Client
from fedlib.errors import CellfedError

# Off a terminal rich would wrap tables at 80 columns; pipes and files get whole rows instead.
PIPE_WIDTH = 250


@dataclass
class Session:
    config: CliConfig
    client: Client
    out: Console
    err: Console

    def show(self, message: Message, render: Callable[[], RenderableType | str]) -> None:
        """The result: JSON of the message for scripts, else what `render` makes of it for people."""
        if self.config.json:
            click.echo(to_json(message))
            return
        shown = render()
        if isinstance(shown, str):
            click.echo(shown)
        elif self.out.is_terminal:
            self.out.print(shown)
        else:  # pipes get no column padding at line ends, for awk and diff
            with self.out.capture() as captured:
                self.out.print(shown)
            click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def line(self, text: str) -> None:
        """A plain result line on stdout (no markup: it may hold user data)."""
        click.echo(text)

    def note(self, text: str | None) -> None:
        """A note or warning on stderr."""
        if text:
            click.echo(text, err=True)

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)


Command = Callable[[Session], Awaitable[int]]


def run(raw: RawOptions, command: Command) -> None:
    """Runs `command` and exits with its code; a usage problem surfaces as click's usage error (exit 2)."""
    config = resolve(raw, os.environ)
    try:
        code = asyncio.run(_with_client(config, command))
    except CellfedError as exc:
        click.echo(error_line(exc, routers=config.routers), err=True)
        code = exit_code_for(exc)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    click.get_current_context().exit(code)


async def _with_client(config: CliConfig, command: Command) -> int:
    client = Client(
        list(config.routers), config.token, timeout_s=config.timeout_s, ca=config.ca, identity=config.identity
    )
    try:
        if len(config.routers) > 1:
            await client.probe()
        return await command(Session(config, client, console(stderr=False), console(stderr=True)))
    finally:
        await client.close()


def console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)
