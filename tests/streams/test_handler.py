"""The worker's per-upload logic with in-memory ports: no Kafka, no S3."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from photostream.config import WorkerSettings
from photostream.deletions import write_tombstone
from photostream.objectstore import MemoryObjectStore, StoreUnavailable
from schemas.events import (
    FailureReason,
    ImageProcessed,
    ProcessingFailed,
    ProcessingStarted,
    UploadDeleted,
    UploadReceived,
    VariantRendered,
)
from schemas.topics import Source
from streams.duplicates import DuplicateIndex
from streams.handler import UploadHandler
from streams.imaging import Limits
from streams.processing import ImageProcessor
from tests.streams.uploads import photo

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
WORKER = WorkerSettings()
SOURCE = Source("photo-uploads", 3, 41)


class Originals(MemoryObjectStore):
    """The memory store, whose first ``unavailable_for`` reads fail as S3's do when it is down.

    Reads stream in chunks from a worker thread, as the S3 adapter's do. With ``break_after``,
    the failing reads break after that many bytes instead of refusing at once.
    """

    CHUNK = 64 * 1024

    def __init__(self, *, unavailable_for: int = 0, break_after: int = 0) -> None:
        super().__init__()
        self.unavailable_for = unavailable_for
        self.break_after = break_after
        self.reads = 0

    async def read_into(self, key: str, write, *, chunk_bytes: int = CHUNK) -> int:
        self.reads += 1
        if self.reads > self.unavailable_for:
            return await super().read_into(key, write, chunk_bytes=self.CHUNK)
        if not self.break_after:
            raise StoreUnavailable("connection refused")
        sent = 0

        def until_reset(chunk: bytes) -> None:
            nonlocal sent
            chunk = chunk[: self.break_after - sent]
            write(chunk)
            sent += len(chunk)
            if sent >= self.break_after:
                raise StoreUnavailable("connection reset mid-body")

        await super().read_into(key, until_reset, chunk_bytes=self.CHUNK)
        raise StoreUnavailable("connection reset mid-body")


async def store_of(objects: dict[str, bytes], **failures: int) -> Originals:
    store = Originals(**failures)
    for key, data in objects.items():
        await store.put(key, data, content_type="image/jpeg")
    return store


def upload_of(data: bytes, *, photographer: str = "alice", key: str = "originals/alice/1") -> UploadReceived:
    return UploadReceived(
        upload_id=uuid.uuid4(),
        photographer_id=photographer,
        filename="a.jpg",
        content_type="image/jpeg",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        bucket="photostream",
        original_key=key,
        received_at=NOW,
        stored_at=NOW,
        published_at=NOW,
        gateway_id="test",
    )


def gps_jpeg() -> bytes:
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 200)).save(out, "JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture(scope="module")
def executor():
    with ThreadPoolExecutor(2) as pool:
        yield pool


def handler_for(originals, executor, **options) -> UploadHandler:
    defaults = {"fetch_retry_seconds": WORKER.fetch_retry_seconds, "spill_bytes": WORKER.spill_bytes}
    return UploadHandler(
        originals,
        ImageProcessor(executor, limits=Limits(max_pixels=4_000_000)),
        clock=lambda: NOW,
        **(defaults | options),
    )


async def run(handler: UploadHandler, upload: UploadReceived, index: DuplicateIndex | None = None):
    prepared = await handler.prepare(upload, SOURCE)
    return handler.decide(prepared, SOURCE, index or DuplicateIndex({}, max_distance=WORKER.duplicate_distance))


async def test_a_photo_becomes_its_variants_then_its_summary(executor):
    data = photo(1, size=(800, 600))
    upload = upload_of(data)
    events = await run(handler_for(await store_of({upload.original_key: data}), executor), upload)
    *variants, summary = events
    assert all(isinstance(v, VariantRendered) for v in variants)
    assert isinstance(summary, ImageProcessed)
    assert len(variants) == 5
    assert {v.variant_count for v in variants} == {5}
    assert summary.variant_names == ("web", "thumb", "square")
    assert {(e.upload_id, e.photographer_id) for e in events} == {(upload.upload_id, "alice")}
    assert (summary.metadata.width, summary.metadata.height, summary.metadata.camera_make) == (800, 600, "Canon")
    assert summary.received_at == NOW
    assert summary.sha256 == upload.sha256
    assert len(summary.phash) == 16


async def test_the_start_is_announced_before_the_original_is_read_with_the_summary_s_start_time(executor):
    data = photo(6, size=(800, 600))
    upload = upload_of(data)
    originals = await store_of({upload.original_key: data})
    handler = handler_for(originals, executor)
    announced: list[tuple[ProcessingStarted, int]] = []

    async def announce(started: ProcessingStarted) -> None:
        announced.append((started, originals.reads))

    prepared = await handler.prepare(upload, SOURCE, announce=announce)
    *_, summary = handler.decide(prepared, SOURCE, DuplicateIndex({}, max_distance=WORKER.duplicate_distance))
    [(started, reads_before)] = announced
    assert reads_before == 0  # told before the fetch, so a follower hears it while the work runs
    assert (started.upload_id, started.photographer_id, started.received_at) == (upload.upload_id, "alice", NOW)
    assert started.processing_started_at == summary.processing_started_at == NOW


async def test_the_second_of_two_copies_points_at_the_first(executor):
    data = photo(2, size=(400, 300))
    first, second = upload_of(data, key="k1"), upload_of(data, key="k2")
    handler = handler_for(await store_of({"k1": data, "k2": data}), executor)
    index = DuplicateIndex({}, max_distance=WORKER.duplicate_distance)
    (*_, summary1) = handler.decide(
        await handler.prepare(first, Source("photo-uploads", 0, 1)), Source("photo-uploads", 0, 1), index
    )
    (*_, summary2) = handler.decide(
        await handler.prepare(second, Source("photo-uploads", 0, 2)), Source("photo-uploads", 0, 2), index
    )
    assert summary1.duplicate_of is None
    assert (summary2.duplicate_of, summary2.duplicate_kind) == (first.upload_id, "exact")


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (photo(3)[:3000], FailureReason.CORRUPT),
        (b"not an image at all", FailureReason.UNSUPPORTED),
    ],
)
async def test_bad_originals_become_dead_letters_with_a_reason(executor, stored, reason):
    upload = upload_of(stored)
    (failure,) = await run(handler_for(await store_of({upload.original_key: stored}), executor), upload)
    assert isinstance(failure, ProcessingFailed)
    assert failure.reason is reason
    assert failure.detail
    assert (failure.source_topic, failure.source_partition, failure.source_offset) == ("photo-uploads", 3, 41)
    assert failure.stage == "processing"


async def test_too_many_pixels_is_refused_before_decoding(executor):
    data = photo(4, size=(2400, 1800))  # 4.3 MP, over this handler's 4 MP limit
    upload = upload_of(data)
    (failure,) = await run(handler_for(await store_of({upload.original_key: data}), executor), upload)
    assert failure.reason is FailureReason.TOO_MANY_PIXELS


async def test_a_missing_original_is_a_dead_letter(executor):
    (failure,) = await run(handler_for(await store_of({}), executor), upload_of(b"x"))
    assert failure.reason is FailureReason.MISSING_ORIGINAL


async def test_an_original_that_changed_since_the_gateway_is_a_checksum_mismatch(executor):
    upload = upload_of(photo(5, size=(200, 100)))
    other = photo(6, size=(200, 100))
    (failure,) = await run(handler_for(await store_of({upload.original_key: other}), executor), upload)
    assert failure.reason is FailureReason.CHECKSUM_MISMATCH
    assert "sha256" in failure.detail


async def test_a_store_that_recovers_is_retried(executor):
    data = photo(7, size=(200, 100))
    upload = upload_of(data)
    originals = await store_of({upload.original_key: data}, unavailable_for=2)
    events = await run(handler_for(originals, executor, fetch_retry_seconds=30), upload)
    assert isinstance(events[-1], ImageProcessed)
    assert originals.reads == 3


async def test_a_store_that_stays_down_fails_the_upload_as_internal(executor):
    data = photo(8, size=(200, 100))
    upload = upload_of(data)
    originals = await store_of({upload.original_key: data}, unavailable_for=10**6)
    (failure,) = await run(handler_for(originals, executor, fetch_retry_seconds=0.5), upload)
    assert failure.reason is FailureReason.INTERNAL
    assert originals.reads > 1


async def test_gps_stays_only_for_photographers_who_opted_in(executor):
    data = gps_jpeg()
    alice, bob = upload_of(data, photographer="alice"), upload_of(data, photographer="bob")
    handler = handler_for(await store_of({alice.original_key: data}), executor, gps_opt_in=frozenset({"alice"}))
    *variants, kept = await run(handler, alice)
    *_, dropped = await run(handler, bob)
    assert kept.metadata.gps_latitude == pytest.approx(48.858333, abs=1e-5)
    assert kept.metadata.gps_longitude == pytest.approx(2.294444, abs=1e-5)
    assert (dropped.metadata.gps_latitude, dropped.metadata.gps_longitude) == (None, None)
    for variant in variants:
        assert Image.open(io.BytesIO(variant.data)).getexif().get_ifd(0x8825) == {}
        assert b"Exif" not in variant.data


async def test_an_unexpected_library_error_is_internal_and_not_raised(executor, monkeypatch):
    data = photo(9, size=(200, 100))
    upload = upload_of(data)
    handler = handler_for(await store_of({upload.original_key: data}), executor)

    async def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(handler._processor, "process", broken)
    (failure,) = await run(handler, upload)
    assert failure.reason is FailureReason.INTERNAL
    assert "a bug" in failure.detail


# Originals larger than the spill threshold are processed from a temp file, removed however it ends.

SPILL = 64 * 1024


def spilling_handler(originals, executor, directory, **options) -> UploadHandler:
    return handler_for(originals, executor, spill_bytes=SPILL, spill_dir=directory, **options)


def spy_on_sources(handler: UploadHandler, monkeypatch, directory) -> list[tuple[object, list]]:
    """Record what the image library is given, and the temp files there are meanwhile."""
    seen: list[tuple[object, list]] = []
    process = handler._processor.process

    async def spy(source, **options):
        seen.append((source, sorted(directory.iterdir()) if directory.exists() else []))
        return await process(source, **options)

    monkeypatch.setattr(handler._processor, "process", spy)
    return seen


async def test_a_large_original_is_processed_from_a_temp_file_then_removed(executor, tmp_path, monkeypatch):
    data = photo(10, size=(1200, 900))
    assert len(data) > SPILL
    upload = upload_of(data)
    handler = spilling_handler(await store_of({upload.original_key: data}), executor, tmp_path)
    seen = spy_on_sources(handler, monkeypatch, tmp_path)
    *_, summary = await run(handler, upload)
    assert isinstance(summary, ImageProcessed)
    assert summary.metadata.bytes == len(data)
    ((source, files),) = seen
    assert isinstance(source, Path)
    assert files == [source]
    assert list(tmp_path.iterdir()) == []


async def test_a_small_original_is_processed_from_memory(executor, tmp_path, monkeypatch):
    data = photo(11, size=(64, 48))
    assert len(data) <= SPILL
    upload = upload_of(data)
    handler = spilling_handler(await store_of({upload.original_key: data}), executor, tmp_path)
    seen = spy_on_sources(handler, monkeypatch, tmp_path)
    *_, summary = await run(handler, upload)
    assert isinstance(summary, ImageProcessed)
    assert seen == [(data, [])]


async def test_a_large_original_that_cannot_be_decoded_leaves_no_temp_file(executor, tmp_path, monkeypatch):
    data = photo(12, size=(1200, 900))
    stored = data[: len(data) // 2]
    assert len(stored) > SPILL
    upload = upload_of(stored)
    handler = spilling_handler(await store_of({upload.original_key: stored}), executor, tmp_path)
    seen = spy_on_sources(handler, monkeypatch, tmp_path)
    (failure,) = await run(handler, upload)
    assert failure.reason is FailureReason.CORRUPT
    assert isinstance(seen[0][0], Path)
    assert list(tmp_path.iterdir()) == []


async def test_a_large_original_that_changed_is_a_checksum_mismatch_and_leaves_no_temp_file(
    executor, tmp_path, monkeypatch
):
    upload = upload_of(photo(13, size=(1200, 900)))
    other = photo(14, size=(1200, 900))
    handler = spilling_handler(await store_of({upload.original_key: other}), executor, tmp_path)
    seen = spy_on_sources(handler, monkeypatch, tmp_path)
    (failure,) = await run(handler, upload)
    assert failure.reason is FailureReason.CHECKSUM_MISMATCH
    assert "sha256" in failure.detail
    assert seen == []  # never decoded
    assert list(tmp_path.iterdir()) == []


async def test_a_cancelled_upload_leaves_no_temp_file(executor, tmp_path, monkeypatch):
    data = photo(15, size=(1200, 900))
    upload = upload_of(data)
    handler = spilling_handler(await store_of({upload.original_key: data}), executor, tmp_path)
    processing = asyncio.Event()

    async def stuck(source, **_options):
        processing.set()
        await asyncio.Event().wait()  # the worker stops while this upload is being processed

    monkeypatch.setattr(handler._processor, "process", stuck)
    task = asyncio.create_task(handler.prepare(upload, SOURCE))
    await asyncio.wait_for(processing.wait(), 10)
    assert len(list(tmp_path.iterdir())) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == []


async def test_a_download_broken_mid_body_starts_over_in_a_fresh_spool(executor, tmp_path):
    data = photo(16, size=(1200, 900))
    upload = upload_of(data)
    # The first read breaks after 100 KB, already spilled to disk; the retry must not append to it.
    originals = await store_of({upload.original_key: data}, unavailable_for=1, break_after=100_000)
    handler = spilling_handler(originals, executor, tmp_path, fetch_retry_seconds=30)
    *_, summary = await run(handler, upload)
    assert isinstance(summary, ImageProcessed)
    assert originals.reads == 2
    assert list(tmp_path.iterdir()) == []


def deleted(upload: UploadReceived, *, at: datetime = NOW) -> UploadDeleted:
    return UploadDeleted(
        upload_id=upload.upload_id,
        photographer_id=upload.photographer_id,
        sha256=upload.sha256,
        bucket=upload.bucket,
        original_key=upload.original_key,
        received_at=upload.received_at,
        deleted_at=at,
        gateway_id="test",
    )


async def test_an_upload_deleted_before_the_worker_came_to_it_is_skipped_not_failed(executor):
    upload = upload_of(photo(7, size=(200, 100)))
    store = await store_of({})  # the delete removed the original
    await write_tombstone(store, deleted(upload))
    assert await run(handler_for(store, executor), upload) == ()


async def test_a_missing_original_whose_tombstone_is_of_an_earlier_upload_is_still_a_dead_letter(executor):
    upload = upload_of(b"x")
    store = await store_of({})
    await write_tombstone(store, deleted(upload, at=NOW - timedelta(days=1)))  # deleted, then sent again
    (failure,) = await run(handler_for(store, executor), upload)
    assert failure.reason is FailureReason.MISSING_ORIGINAL


async def test_an_upload_deleted_while_it_was_processed_emits_nothing_and_is_no_duplicate_candidate(executor):
    data = photo(8, size=(400, 300))
    upload = upload_of(data)
    handler = handler_for(await store_of({upload.original_key: data, "k2": data}), executor)
    index = DuplicateIndex({}, max_distance=WORKER.duplicate_distance)
    prepared = await handler.prepare(upload, SOURCE)
    assert prepared.processed is not None, "the image work was done"
    index.forget(upload.photographer_id, upload.upload_id, sha256=upload.sha256, deleted_at=NOW)
    assert handler.decide(prepared, SOURCE, index) == ()
    later = upload_of(data, key="k2")
    (*_, summary) = handler.decide(await handler.prepare(later, SOURCE), Source("photo-uploads", 3, 42), index)
    assert summary.duplicate_of is None
