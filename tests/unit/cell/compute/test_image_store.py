"""The site's content-addressed image store (cell.compute.image_store): only bytes proved to be the
image ever get its name; concurrent builds share one transfer; a corrupt or truncated source is skipped
for the next holder; a stalled one is cut at its per-chunk deadline."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cell.compute.image_store import ImageCorrupt, ImageStore, Source, check_sha256
from fedlib.errors import InvalidArgument, Unavailable

IMAGE = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(IMAGE).hexdigest()


def _chunks(data: bytes, size: int = 65536, *, delay_s: float = 0.0) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            if delay_s:
                await asyncio.sleep(delay_s)
            yield data[i : i + size]

    return gen()


def _leftovers(store: ImageStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir())


async def test_a_good_transfer_is_stored_read_only_under_its_sha256(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    path = await store.put(SHA, len(IMAGE), _chunks(IMAGE))
    assert path == store.path_of(SHA) and path.read_bytes() == IMAGE and store.has(SHA)
    assert path.stat().st_mode & 0o777 == 0o444
    assert _leftovers(store) == [SHA]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (IMAGE[:-1] + b"\x00", "the bytes have sha256"),
        (IMAGE[: len(IMAGE) // 2], "truncated, 524288 of 1048576"),
        (IMAGE + b"x", "more than its 1048576 bytes"),
    ],
)
async def test_a_corrupt_or_truncated_transfer_leaves_nothing(tmp_path: Path, data: bytes, says: str) -> None:
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageCorrupt, match=says):
        await store.put(SHA, len(IMAGE), _chunks(data))
    assert _leftovers(store) == [] and not store.has(SHA)


async def test_a_stalled_source_is_cut_at_its_chunk_deadline(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images", chunk_timeout_s=0.05)
    with pytest.raises(ImageCorrupt, match=r"no chunk for 0\.05s"):
        await store.put(SHA, len(IMAGE), _chunks(IMAGE, delay_s=1.0))
    assert _leftovers(store) == []


async def test_concurrent_builds_share_one_transfer_and_a_bad_holder_is_routed_around(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    opened: list[str] = []

    def source(name: str, data: bytes) -> Source:
        def open_() -> AsyncIterator[bytes]:
            opened.append(name)
            return _chunks(data, delay_s=0.001)

        return Source(name, open_)

    sources = [source("ams1 (corrupt)", IMAGE[::-1]), source("par1", IMAGE)]
    paths = await asyncio.gather(*(store.ensure(SHA, len(IMAGE), sources) for _ in range(8)))
    assert {p.read_bytes() == IMAGE for p in paths} == {True}
    assert opened == ["ams1 (corrupt)", "par1"]  # eight builds, one try per holder, not eight
    assert store.transfers == 1
    await store.ensure(SHA, len(IMAGE), sources)
    assert opened == ["ams1 (corrupt)", "par1"]  # cached: no transfer at all


async def test_no_good_holder_is_unavailable_naming_each_failure(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")

    def broken() -> AsyncIterator[bytes]:
        raise OSError("connection reset")

    sources = [Source("ams1", lambda: _chunks(b"junk")), Source("sin1", broken)]
    with pytest.raises(Unavailable, match=r"ams1: .*truncated.*; sin1: connection reset"):
        await store.ensure(SHA, len(IMAGE), sources)
    assert _leftovers(store) == []


def test_a_bad_checksum_is_refused() -> None:
    for bad in ("", "ABC", "g" * 64, SHA.upper(), SHA + "0"):
        with pytest.raises(InvalidArgument):
            check_sha256(bad)
