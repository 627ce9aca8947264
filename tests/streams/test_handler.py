"""The worker's per-upload logic with in-memory ports: no Kafka, no S3."""

from __future__ import annotations

import hashlib
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from PIL import Image

from photostream.objectstore import ObjectMissing, StoreUnavailable
from schemas.events import FailureReason, ImageProcessed, ProcessingFailed, UploadReceived, VariantRendered
from streams.duplicates import DuplicateIndex
from streams.handler import Source, UploadHandler
from streams.imaging import Limits
from streams.processing import ImageProcessor
from tests.streams.uploads import photo

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SOURCE = Source("photo-uploads", 3, 41)


class Originals:
    """Objects by key, with a number of transient failures to serve before each read succeeds."""

    def __init__(self, objects: dict[str, bytes], *, unavailable_for: int = 0) -> None:
        self.objects = objects
        self.unavailable_for = unavailable_for
        self.reads = 0

    async def get(self, key: str) -> bytes:
        self.reads += 1
        if self.reads <= self.unavailable_for:
            raise StoreUnavailable("connection refused")
        if key not in self.objects:
            raise ObjectMissing("NoSuchKey")
        return self.objects[key]


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
    return UploadHandler(
        originals, ImageProcessor(executor, limits=Limits(max_pixels=4_000_000)), clock=lambda: NOW, **options
    )


async def run(handler: UploadHandler, upload: UploadReceived, index: DuplicateIndex | None = None):
    prepared = await handler.prepare(upload, SOURCE)
    return handler.decide(prepared, SOURCE, index or DuplicateIndex({}))


async def test_a_photo_becomes_its_variants_then_its_summary(executor):
    data = photo(1, size=(800, 600))
    upload = upload_of(data)
    events = await run(handler_for(Originals({upload.original_key: data}), executor), upload)
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


async def test_the_second_of_two_copies_points_at_the_first(executor):
    data = photo(2, size=(400, 300))
    first, second = upload_of(data, key="k1"), upload_of(data, key="k2")
    handler = handler_for(Originals({"k1": data, "k2": data}), executor)
    index = DuplicateIndex({})
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
    (failure,) = await run(handler_for(Originals({upload.original_key: stored}), executor), upload)
    assert isinstance(failure, ProcessingFailed)
    assert failure.reason is reason
    assert failure.detail
    assert (failure.source_topic, failure.source_partition, failure.source_offset) == ("photo-uploads", 3, 41)
    assert failure.stage == "processing"


async def test_too_many_pixels_is_refused_before_decoding(executor):
    data = photo(4, size=(2400, 1800))  # 4.3 MP, over this handler's 4 MP limit
    upload = upload_of(data)
    (failure,) = await run(handler_for(Originals({upload.original_key: data}), executor), upload)
    assert failure.reason is FailureReason.TOO_MANY_PIXELS


async def test_a_missing_original_is_a_dead_letter(executor):
    (failure,) = await run(handler_for(Originals({}), executor), upload_of(b"x"))
    assert failure.reason is FailureReason.MISSING_ORIGINAL


async def test_an_original_that_changed_since_the_gateway_is_corrupt(executor):
    upload = upload_of(photo(5, size=(200, 100)))
    other = photo(6, size=(200, 100))
    (failure,) = await run(handler_for(Originals({upload.original_key: other}), executor), upload)
    assert failure.reason is FailureReason.CORRUPT
    assert "sha256" in failure.detail


async def test_a_store_that_recovers_is_retried(executor):
    data = photo(7, size=(200, 100))
    upload = upload_of(data)
    originals = Originals({upload.original_key: data}, unavailable_for=2)
    events = await run(handler_for(originals, executor, fetch_retry_seconds=30), upload)
    assert isinstance(events[-1], ImageProcessed)
    assert originals.reads == 3


async def test_a_store_that_stays_down_fails_the_upload_as_internal(executor):
    data = photo(8, size=(200, 100))
    upload = upload_of(data)
    originals = Originals({upload.original_key: data}, unavailable_for=10**6)
    (failure,) = await run(handler_for(originals, executor, fetch_retry_seconds=0.5), upload)
    assert failure.reason is FailureReason.INTERNAL
    assert originals.reads > 1


async def test_gps_stays_only_for_photographers_who_opted_in(executor):
    data = gps_jpeg()
    alice, bob = upload_of(data, photographer="alice"), upload_of(data, photographer="bob")
    handler = handler_for(Originals({alice.original_key: data}), executor, gps_opt_in=frozenset({"alice"}))
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
    handler = handler_for(Originals({upload.original_key: data}), executor)

    async def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(handler._processor, "process", broken)
    (failure,) = await run(handler, upload)
    assert failure.reason is FailureReason.INTERNAL
    assert "a bug" in failure.detail
