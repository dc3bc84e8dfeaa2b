"""A site's content-addressed image store (issue 13): image bytes kept by their sha256 under one
directory, written so that nothing half-written is ever visible as usable.

- `put` streams chunks into a temporary file in the same directory, checks the size and the sha256 as the
  bytes arrive, and only then renames it to `<sha256>` (atomic on one file system). A corrupted or
  truncated transfer raises ImageCorrupt, names what was expected and what came, and leaves nothing.
- `ensure(sha256, fetch)` is single-flight: concurrent builds of one image that the store lacks wait on
  one transfer; a failed transfer is tried again from the next source `fetch` offers (another holder),
  never used.
Chunks are bounded, and every chunk has its own deadline, so a stalled source cannot hold a build forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fedlib.errors import CellfedError, InvalidArgument, Unavailable

_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_CHUNK_BYTES = 4 * 1024 * 1024
CHUNK_TIMEOUT_S = 30.0


class ImageCorrupt(Unavailable):
    """The bytes a source sent are not the image (wrong checksum or size): that source is not used."""


def check_sha256(value: str, field: str = "sha256") -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise InvalidArgument(f"{field} must be 64 lowercase hex characters", field=field)
    return value


@dataclass(frozen=True)
class Source:
    """Where an image's bytes can come from: a name for the log (a site) and how to stream them."""

    name: str
    open: Callable[[], AsyncIterator[bytes]]


def _flush(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())  # the bytes are on disk before the name says they are the image


class ImageStore:
    def __init__(self, root: Path, *, chunk_timeout_s: float = CHUNK_TIMEOUT_S) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._chunk_timeout_s = chunk_timeout_s
        self._inflight: dict[str, asyncio.Future[Path]] = {}
        self.transfers = 0  # completed transfers (what a test counts: one per image per site)

    def path_of(self, sha256: str) -> Path:
        return self.root / check_sha256(sha256)

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    async def put(self, sha256: str, size: int, chunks: AsyncIterator[bytes]) -> Path:
        """Stores the image whose bytes `chunks` yields, once they are proved to be it."""
        final = self.path_of(sha256)
        if final.is_file():
            return final
        temporary = final.with_name(f".{sha256}.{os.getpid()}.{id(chunks)}.part")
        digest, written = hashlib.sha256(), 0
        try:
            with temporary.open("wb") as out:
                iterator = aiter(chunks)
                while True:
                    try:
                        chunk = await asyncio.wait_for(anext(iterator), self._chunk_timeout_s)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        waited = f"{self._chunk_timeout_s:g}s"
                        raise ImageCorrupt(
                            f"image {sha256[:12]}: no chunk for {waited} after {written} bytes"
                        ) from None
                    if len(chunk) > MAX_CHUNK_BYTES:
                        raise ImageCorrupt(
                            f"image {sha256[:12]}: a chunk of {len(chunk)} bytes is over the limit"
                        )
                    written += len(chunk)
                    if written > size:
                        raise ImageCorrupt(f"image {sha256[:12]}: more than its {size} bytes arrived")
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)  # disk I/O off the event loop
                await asyncio.to_thread(_flush, out)
            if written != size:
                raise ImageCorrupt(f"image {sha256[:12]}: truncated, {written} of {size} bytes arrived")
            if digest.hexdigest() != sha256:
                raise ImageCorrupt(f"image {sha256[:12]}: the bytes have sha256 {digest.hexdigest()[:12]}...")
            os.chmod(temporary, 0o444)  # a base is shared read-only by every overlay on it
            os.replace(temporary, final)
            self.transfers += 1
            return final
        finally:
            temporary.unlink(missing_ok=True)

    async def ensure(self, sha256: str, size: int, sources: Sequence[Source]) -> Path:
        """The image's path, fetched once if missing: concurrent callers share one transfer, and a source
        that sends something else is skipped for the next (nearest first, as the caller orders them)."""
        if self.has(sha256):
            return self.path_of(sha256)
        pending = self._inflight.get(sha256)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._inflight[sha256] = future
        try:
            path = await self._fetch(sha256, size, sources)
            future.set_result(path)
            return path
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            future.exception()  # retrieved: waiters get it; nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[sha256]

    async def _fetch(self, sha256: str, size: int, sources: Sequence[Source]) -> Path:
        failures = []
        for source in sources:
            try:
                return await self.put(sha256, size, source.open())
            except CellfedError as exc:  # corrupt, truncated, stalled or unreachable: the next holder
                failures.append(f"{source.name}: {exc.message}")
            except OSError as exc:  # the source's own I/O failed mid-stream
                failures.append(f"{source.name}: {exc}")
        tried = "; ".join(failures) or "no holder known"
        raise Unavailable(f"image {sha256[:12]} could not be fetched ({tried})")
