"""Originals streamed from the real S3: hashed off the event loop, chunk by chunk, large ones through a temp file."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from photostream.config import WorkerSettings
from photostream.objectstore import ObjectMissing, ObjectStore
from schemas.events import ImageProcessed
from schemas.topics import Source
from streams.duplicates import DuplicateIndex
from streams.handler import UploadHandler
from streams.imaging import Limits
from streams.processing import ImageProcessor
from tests.streams.test_handler import upload_of
from tests.streams.uploads import photo

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(local_stack):
    store = ObjectStore(local_stack.s3)
    yield store
    await store.close()


async def test_an_object_streams_in_chunks_on_the_stores_threads(store, unique_name):
    key = f"tests/{unique_name('original')}.bin"
    data = os.urandom(5 * 1024 * 1024 + 123)
    await store.put(key, data, content_type="application/octet-stream")
    event_loop_thread = threading.get_ident()
    digest, threads, chunks = hashlib.sha256(), set(), []

    def write(chunk: bytes) -> None:
        threads.add(threading.get_ident())
        chunks.append(len(chunk))
        digest.update(chunk)

    try:
        assert await store.read_into(key, write) == len(data)
    finally:
        await store.delete(key)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert event_loop_thread not in threads
    assert len(chunks) > 1
    assert max(chunks) <= 1 << 20


async def test_a_missing_object_is_object_missing(store, unique_name):
    with pytest.raises(ObjectMissing):
        await store.read_into(f"tests/{unique_name('gone')}.bin", lambda _chunk: None)


async def test_the_handler_processes_a_large_original_from_s3_through_a_temp_file(store, unique_name, tmp_path):
    data = photo(21, size=(2400, 1600))
    assert len(data) > 256 * 1024
    upload = upload_of(data, key=f"tests/{unique_name('original')}.jpg")
    await store.put(upload.original_key, data, content_type="image/jpeg")
    source = Source("photo-uploads", 0, 1)
    with ThreadPoolExecutor(2) as executor:
        handler = UploadHandler(
            store,
            ImageProcessor(executor, limits=Limits(max_pixels=10_000_000)),
            fetch_retry_seconds=WorkerSettings().fetch_retry_seconds,
            spill_bytes=256 * 1024,
            spill_dir=tmp_path,
        )
        try:
            prepared = await handler.prepare(upload, source)
        finally:
            await store.delete(upload.original_key)
    *variants, summary = handler.decide(
        prepared, source, DuplicateIndex({}, max_distance=WorkerSettings().duplicate_distance)
    )
    assert isinstance(summary, ImageProcessed), prepared.failure
    assert (summary.metadata.width, summary.metadata.bytes) == (2400, len(data))
    assert len(variants) == 5
    assert list(tmp_path.iterdir()) == []
