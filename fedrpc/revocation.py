"""Revoked certificate serials, from a file the operator edits (`cellfed pki revoke` appends to it).

One serial per line in hex as `cellfed pki show` prints it; `#` starts a comment. The file is re-read when it
changes (a stat per check, like the TLS files), so a revocation takes effect on the next call without a
restart. Short leaf lifetimes (72 h by default) bound how long the list has to remember a serial.

A missing file is an empty list (nothing revoked yet). A file that does not parse is refused at start with
the line; a later bad edit keeps the previous list and says so, so a typo never un-revokes everything."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fedlib.errors import ConfigError
from fedrpc.tls_files import read_file

log = logging.getLogger(__name__)

_MAX_SERIAL_HEX = 40  # RFC 5280: a serial is at most 20 octets


def parse_revocations(text: str, path: Path) -> frozenset[int]:
    serials = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.partition("#")[0].strip().lower().replace(":", "")
        if not entry:
            continue
        if len(entry) > _MAX_SERIAL_HEX or any(c not in "0123456789abcdef" for c in entry):
            raise ConfigError(
                f"{path}:{number}: a revoked serial must be hexadecimal (at most 20 bytes); "
                "copy it from `cellfed pki show`",
                field=str(path),
            )
        serials.add(int(entry, 16))
    return frozenset(serials)


@dataclass
class RevocationList:
    path: Path
    _serials: frozenset[int] = frozenset()
    _signature: tuple[int, int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, path: str | os.PathLike[str]) -> RevocationList:
        revocations = cls(Path(path))
        revocations._reload(strict=True)
        return revocations

    def contains(self, serial: int) -> bool:
        self._reload(strict=False)
        return serial in self._serials

    def _reload(self, *, strict: bool) -> None:
        try:
            st = self.path.stat()
            signature: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            signature = None
        with self._lock:
            if signature == self._signature and not strict:
                return
            try:
                serials = frozenset() if signature is None else self._read()
            except ConfigError as exc:
                if strict:
                    raise
                log.warning(
                    "%s changed but is refused, keeping the previous list: %s", self.path, exc.message
                )
                self._signature = signature
                return
            self._serials, self._signature = serials, signature

    def _read(self) -> frozenset[int]:
        try:
            text = read_file(self.path).decode()
        except UnicodeDecodeError:
            raise ConfigError(
                f"{self.path} is not text; one hex serial per line", field=str(self.path)
            ) from None
        return parse_revocations(text, self.path)
