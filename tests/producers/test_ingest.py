"""Receiving an original: hashed as it arrives, spooled beyond a part, stored with one PUT at its key."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from photostream.objectstore import MemoryObjectStore, StoreUnavailable
from producers.ingest import OriginalWriter, RejectedFile, stage

JPEG_HEAD = b"\xff\xd8\xff\xe0" + b"\0" * 28


class MemoryStore(MemoryObjectStore):
    """The memory store, recording every operation asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: list[str] = []

    async def _enter(self, operation):
        self.operations.append(operation)
        await super()._enter(operation)


class RecordingWriter(OriginalWriter):
    """The writer, recording the largest body it held in memory at once."""

    largest_spill = 0

    def _hash_and_write(self, body):
        self.largest_spill = max(self.largest_spill, len(body))
        super()._hash_and_write(body)


async def chunks_of(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def writer(store, spool_dir, *, part_bytes=1000, max_bytes=10_000):
    return RecordingWriter(store, part_bytes=part_bytes, max_bytes=max_bytes, spool_dir=spool_dir)


def open_spool_files(spool_dir) -> list[str]:
    """This process's open files in ``spool_dir`` (unnamed ones show as ``#inode (deleted)``)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the descriptor closed while the list was read
    return [link for link in links if Path(link.removesuffix(" (deleted)")).parent == Path(spool_dir)]


async def test_small_file_stays_in_memory_and_is_one_put_after_commit(tmp_path):
    store = MemoryStore()
    data = JPEG_HEAD + b"x" * 100
    w = writer(store, tmp_path)
    staged = await stage(w, chunks_of(data, 7))
    assert staged.size == len(data)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.content_type == "image/jpeg"
    assert store.operations == [], "nothing reaches the store before commit"
    assert open_spool_files(tmp_path) == [], "a file within one part is never spooled"
    await w.commit("originals/k")
    assert store.operations == ["put"]
    assert await store.get("originals/k") == data
    assert store.stored("originals/k").content_type == "image/jpeg"


async def test_large_file_is_spooled_in_bounded_parts_then_stored_with_one_put(tmp_path):
    store = MemoryStore()
    data = JPEG_HEAD + os.urandom(9_000)
    w = writer(store, tmp_path)
    staged = await stage(w, chunks_of(data, 333))
    assert 0 < w.largest_spill < 1000 + 333, "memory never holds much more than part_bytes"
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert store.operations == [], "nothing reaches the store before the key is known"
    assert len(open_spool_files(tmp_path)) == 1, "the bytes wait in an unnamed file in the spool directory"
    assert list(tmp_path.iterdir()) == [], "and nothing in it has a name"
    await w.commit("originals/k")
    assert store.operations == ["put"], "no multipart upload, no copy, no staged object to delete"
    assert await store.get("originals/k") == data
    assert store.stored("originals/k").sha256 == hashlib.sha256(data).digest(), "S3 checks the bytes hashed"
    assert open_spool_files(tmp_path) == []


async def test_a_failed_put_stores_nothing_and_closes_the_spool(tmp_path):
    store = MemoryStore()
    store.fail_with(StoreUnavailable("S3 down"), "put")
    w = writer(store, tmp_path)
    await stage(w, chunks_of(JPEG_HEAD + os.urandom(3_000), 500))
    with pytest.raises(StoreUnavailable):
        await w.commit("originals/k")
    assert await store.list_keys("") == []
    assert open_spool_files(tmp_path) == []


async def test_too_large_is_rejected_and_the_spool_closed(tmp_path):
    store = MemoryStore()
    w = writer(store, tmp_path, max_bytes=5_000)
    with pytest.raises(RejectedFile) as rejected:
        await stage(w, chunks_of(JPEG_HEAD + b"y" * 6_000, 500))
    assert rejected.value.reason == "too_large"
    assert store.operations == []
    assert open_spool_files(tmp_path) == []


async def test_not_an_image_is_rejected_on_its_first_bytes(tmp_path):
    store = MemoryStore()
    seen = []

    async def endless():
        while True:
            seen.append(1)
            yield b"plain text, not an image. " * 4

    with pytest.raises(RejectedFile) as rejected:
        await stage(writer(store, tmp_path), endless())
    assert rejected.value.reason == "unsupported"
    assert len(seen) == 1, "the verdict comes from the first bytes"


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty"), (b"\xff\xd8", "unsupported"), (b"GIF8", "unsupported")])
async def test_short_files(data, reason, tmp_path):
    with pytest.raises(RejectedFile) as rejected:
        await stage(writer(MemoryStore(), tmp_path), chunks_of(data, 10))
    assert rejected.value.reason == reason


async def test_abort_after_finish_leaves_nothing(tmp_path):
    store = MemoryStore()
    w = writer(store, tmp_path)
    await stage(w, chunks_of(JPEG_HEAD + os.urandom(5_000), 256))
    await w.abort()
    assert store.operations == []
    assert open_spool_files(tmp_path) == []


async def test_a_file_of_many_default_parts_arrives_intact(tmp_path):
    store = MemoryStore()
    part = 5 * 1024 * 1024  # the gateway's default
    data = JPEG_HEAD + os.urandom(2 * part + 1000)
    w = writer(store, tmp_path, part_bytes=part, max_bytes=3 * part)
    staged = await stage(w, chunks_of(data, 300_000))
    await w.commit("originals/k")
    assert await store.get("originals/k") == data
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
