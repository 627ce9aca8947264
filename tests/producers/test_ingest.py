"""Streaming an original into an object store, with the memory store standing in for S3."""

from __future__ import annotations

import hashlib
import os

import pytest

from photostream.objectstore import MIN_PART_BYTES, MemoryObjectStore, StoreUnavailable
from producers.ingest import OriginalWriter, RejectedFile, stage

JPEG_HEAD = b"\xff\xd8\xff\xe0" + b"\0" * 28


class MemoryStore(MemoryObjectStore):
    """The memory store, taking parts of any size (to keep these files small), recording the largest."""

    def __init__(self) -> None:
        super().__init__(min_part_bytes=0)
        self.largest_part = 0

    async def upload_part(self, upload, body):
        self.largest_part = max(self.largest_part, len(body))
        return await super().upload_part(upload, body)


async def chunks_of(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def writer(store, *, part_bytes=1000, max_bytes=10_000):
    return OriginalWriter(store, "incoming/k", part_bytes=part_bytes, max_bytes=max_bytes)


async def test_small_file_is_one_put_after_commit():
    store = MemoryStore()
    data = JPEG_HEAD + b"x" * 100
    w = writer(store)
    staged = await stage(w, chunks_of(data, 7))
    assert staged.size == len(data)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.content_type == "image/jpeg"
    assert await store.list_keys("") == [], "nothing is visible before commit"
    await w.commit("originals/k")
    assert await store.list_keys("") == ["originals/k"], "a one-PUT file goes straight to its key"
    assert await store.get("originals/k") == data
    assert store.stored("originals/k").content_type == "image/jpeg"


async def test_large_file_streams_in_bounded_parts():
    store = MemoryStore()
    data = JPEG_HEAD + os.urandom(9_000)
    w = writer(store)
    staged = await stage(w, chunks_of(data, 333))
    assert store.largest_part < 1000 + 333, "a part never holds much more than part_bytes"
    assert await store.list_keys("") == []
    assert store.open_uploads() == ["incoming/k"], "parts are staged before the final key is known"
    await w.commit("originals/k")
    assert await store.list_keys("") == ["originals/k"], "completed, copied to its key, the staged copy deleted"
    assert await store.get("originals/k") == data
    assert store.open_uploads() == []
    assert staged.sha256 == hashlib.sha256(data).hexdigest()


async def test_a_failed_copy_still_deletes_the_staged_object():
    store = MemoryStore()
    store.fail_with(StoreUnavailable("S3 down"), "copy")
    w = writer(store)
    await stage(w, chunks_of(JPEG_HEAD + os.urandom(3_000), 500))
    with pytest.raises(StoreUnavailable):
        await w.commit("originals/k")
    assert await store.list_keys("") == []
    assert store.open_uploads() == []


async def test_too_large_is_rejected_and_parts_dropped():
    store = MemoryStore()
    w = writer(store, max_bytes=5_000)
    with pytest.raises(RejectedFile) as rejected:
        await stage(w, chunks_of(JPEG_HEAD + b"y" * 6_000, 500))
    assert rejected.value.reason == "too_large"
    assert store.open_uploads() == []
    assert await store.list_keys("") == []


async def test_not_an_image_is_rejected_on_its_first_bytes():
    store = MemoryStore()
    seen = []

    async def endless():
        while True:
            seen.append(1)
            yield b"plain text, not an image. " * 4

    with pytest.raises(RejectedFile) as rejected:
        await stage(writer(store), endless())
    assert rejected.value.reason == "unsupported"
    assert len(seen) == 1, "the verdict comes from the first bytes"


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty"), (b"\xff\xd8", "unsupported"), (b"GIF8", "unsupported")])
async def test_short_files(data, reason):
    with pytest.raises(RejectedFile) as rejected:
        await stage(writer(MemoryStore()), chunks_of(data, 10))
    assert rejected.value.reason == reason


async def test_abort_after_finish_leaves_nothing():
    store = MemoryStore()
    w = writer(store)
    await stage(w, chunks_of(JPEG_HEAD + os.urandom(5_000), 256))
    await w.abort()
    assert store.open_uploads() == []
    assert await store.list_keys("") == []


async def test_every_part_but_the_last_is_as_large_as_s3_requires():
    store = MemoryObjectStore()  # S3's 5 MiB minimum part, as the gateway's default part size
    data = JPEG_HEAD + os.urandom(2 * MIN_PART_BYTES + 1000)
    w = writer(store, part_bytes=MIN_PART_BYTES, max_bytes=3 * MIN_PART_BYTES)
    await stage(w, chunks_of(data, 300_000))
    await w.commit("originals/k")
    assert await store.get("originals/k") == data
