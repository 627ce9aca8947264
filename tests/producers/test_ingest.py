"""Streaming an original into an object store, with an in-memory store standing in for S3."""

from __future__ import annotations

import hashlib
import os

import pytest

from photostream.objectstore import MultipartUpload, StoreUnavailable
from producers.ingest import OriginalWriter, RejectedFile, stage

JPEG_HEAD = b"\xff\xd8\xff\xe0" + b"\0" * 28


class MemoryStore:
    """The slice of ObjectStore that OriginalWriter uses, kept in dicts."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.open_uploads: dict[str, list[bytes]] = {}
        self.largest_part = 0

    async def put(self, key, body, *, content_type, if_none_match=False):
        self.objects[key] = bytes(body)

    async def start_multipart(self, key, *, content_type):
        self.open_uploads[key] = []
        return MultipartUpload(key=key, upload_id=f"mp-{key}")

    async def upload_part(self, upload, body):
        self.open_uploads[upload.key].append(body)
        self.largest_part = max(self.largest_part, len(body))
        return MultipartUpload(upload.key, upload.upload_id, (*upload.parts, {"PartNumber": len(upload.parts) + 1}))

    async def complete_multipart(self, upload):
        self.objects[upload.key] = b"".join(self.open_uploads.pop(upload.key))

    async def abort_multipart(self, upload):
        self.open_uploads.pop(upload.key, None)

    async def copy(self, source_key, key):
        self.objects[key] = self.objects[source_key]

    async def delete(self, key):
        self.objects.pop(key, None)


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
    assert store.objects == {}, "nothing is visible before commit"
    await w.commit("originals/k")
    assert store.objects == {"originals/k": data}, "a one-PUT file goes straight to its key"


async def test_large_file_streams_in_bounded_parts():
    store = MemoryStore()
    data = JPEG_HEAD + os.urandom(9_000)
    w = writer(store)
    staged = await stage(w, chunks_of(data, 333))
    assert store.largest_part < 1000 + 333, "a part never holds much more than part_bytes"
    assert store.objects == {}
    assert list(store.open_uploads) == ["incoming/k"], "parts are staged before the final key is known"
    await w.commit("originals/k")
    assert store.objects == {"originals/k": data}, "completed, copied to its key, the staged copy deleted"
    assert store.open_uploads == {}
    assert staged.sha256 == hashlib.sha256(data).hexdigest()


async def test_a_failed_copy_still_deletes_the_staged_object():
    store = MemoryStore()

    async def refuse(source_key, key):
        raise StoreUnavailable("S3 down")

    store.copy = refuse
    w = writer(store)
    await stage(w, chunks_of(JPEG_HEAD + os.urandom(3_000), 500))
    with pytest.raises(StoreUnavailable):
        await w.commit("originals/k")
    assert store.objects == {}
    assert store.open_uploads == {}


async def test_too_large_is_rejected_and_parts_dropped():
    store = MemoryStore()
    w = writer(store, max_bytes=5_000)
    with pytest.raises(RejectedFile) as rejected:
        await stage(w, chunks_of(JPEG_HEAD + b"y" * 6_000, 500))
    assert rejected.value.reason == "too_large"
    assert store.open_uploads == {}
    assert store.objects == {}


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
    assert store.open_uploads == {}
    assert store.objects == {}
