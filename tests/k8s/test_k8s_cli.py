"""The command lines in the manifests match the real CLI: for every container whose command starts with
`cellfed-server` (the production entry, without the dev tooling), `cellfed-server <group> <command> --help`
must succeed, list every `--flag` the manifest passes, have every required option passed, and accept the
value given to a choice option."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s.objects import SITES, Obj, argv, cli_flags, containers, ident, rendered, workloads

CELLFED = Path(sys.executable).parent / "cellfed-server"


def _cases() -> list[tuple[str, Obj, Obj]]:
    return [
        (site, workload, container)
        for site in SITES
        for workload in workloads(rendered(site))
        for container in containers(workload)
        if argv(container)[:1] == ["cellfed-server"]
    ]


CASES = _cases()


@functools.cache
def _help(subcommand: tuple[str, ...]) -> tuple[int, str]:
    done = subprocess.run(
        [str(CELLFED), *subcommand, "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _options(help_text: str) -> dict[str, str]:
    """Each option's whole help entry (continuation lines joined), by its long flag."""
    entries: dict[str, str] = {}
    current = None
    for line in help_text.split("Options:", 1)[-1].splitlines():
        match = re.match(r"^\s{2}(?:-\w, )?(--[\w-]+)", line)
        if match:
            current = match.group(1)
            entries[current] = line.strip()
        elif current and line.startswith(" " * 4):
            entries[current] += " " + line.strip()
    return entries


def test_every_cellfed_process_is_covered() -> None:
    commands = {tuple(argv(c)[:3]) for _, _, c in CASES}
    assert commands == {
        ("cellfed-server", "router", "serve"),
        ("cellfed-server", "cell", "serve"),
        ("cellfed-server", "agent", "serve"),
        ("cellfed-server", "schema", "apply"),
    }


@pytest.mark.parametrize(
    "site, workload, container", CASES, ids=[f"{s}:{ident(w)}:{c['name']}" for s, w, c in CASES]
)
def test_command_line_matches_cli(site: str, workload: Obj, container: Obj) -> None:
    words = argv(container)[1:]
    subcommand = tuple(w for w in words[: next(i for i, w in enumerate(words) if w.startswith("-"))])
    code, text = _help(subcommand)
    shown = " ".join(["cellfed-server", *subcommand])
    assert code == 0 and f"Usage: {shown} " in text, f"`{shown}` does not exist (yet):\n{text}"
    options = _options(text)
    flags = cli_flags(words)
    unknown = sorted(set(flags) - set(options))
    assert not unknown, f"`{shown}` has no option(s) {unknown}; it has {sorted(options)}"
    required = {flag for flag, entry in options.items() if re.search(r"\[[^\]]*\brequired\]", entry)}
    missing = sorted(required - set(flags))
    assert not missing, f"`{shown}` requires {missing}"
    for flag, value in flags.items():
        choices = re.match(rf"{re.escape(flag)} \[([\w|-]+)\]", options[flag])
        if choices and "$(" not in value:
            assert value in choices.group(1).split("|"), f"{flag}={value} is not one of {choices.group(1)}"
