"""Uploads through the real gateway come out of real workers as decodable events."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from schemas.events import FailureReason, ImageProcessed, ProcessingFailed, VariantRendered
from schemas.topics import PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_VARIANTS
from tests.streams.uploads import photo, upload
from tests.streams.workers import OutputReader

pytestmark = pytest.mark.integration


async def test_uploads_come_out_as_processed_variants_and_failures(gateway, workers, local_stack, unique_name):
    photographer = unique_name("ph")
    api_key = await gateway.services.keys.create(photographer)
    reader = OutputReader(local_stack.kafka)
    workers.start()
    first = photo(1, orientation=6)
    near_copy = Image.open(io.BytesIO(first))
    out = io.BytesIO()
    near_copy.save(out, "JPEG", quality=60, exif=near_copy.getexif())
    broken = photo(3)[:5000]
    accepted = await upload(
        gateway,
        api_key,
        ("first.jpg", first),
        ("other.jpg", photo(2)),
        ("again.jpg", out.getvalue()),
        ("cut.jpg", broken),
    )
    ids = [uuid.UUID(item["upload_id"]) for item in accepted]
    who = {photographer}
    try:
        finished = reader.poll_until(
            lambda r: len(r.of(PHOTO_PROCESSED, who)) >= 3 and len(r.of(PHOTO_FAILED, who)) >= 1, timeout=90
        )
        assert finished, workers.logs()
        processed = {event.upload_id: event for event in reader.of(PHOTO_PROCESSED, who)}
        failed = reader.of(PHOTO_FAILED, who)
        variants = reader.of(PHOTO_VARIANTS, who)
    finally:
        reader.close()

    assert set(processed) == set(ids[:3])
    assert all(isinstance(event, ImageProcessed) for event in processed.values())
    assert [(f.upload_id, f.reason) for f in failed] == [(ids[3], FailureReason.CORRUPT)]
    assert isinstance(failed[0], ProcessingFailed)
    assert failed[0].source_topic == "photo-uploads"

    upright = processed[ids[0]]
    assert (upright.metadata.width, upright.metadata.height) == (800, 1200)  # orientation 6 turns it
    assert upright.metadata.camera_make == "Canon"
    assert upright.metadata.orientation == 6
    assert upright.duplicate_of is None
    assert processed[ids[1]].duplicate_of is None
    assert processed[ids[2]].duplicate_of == ids[0]
    assert processed[ids[2]].duplicate_kind == "near"
    assert upright.processing_started_at >= upright.received_at
    assert upright.processed_at >= upright.processing_started_at

    by_image: dict[uuid.UUID, list[VariantRendered]] = {}
    for variant in variants:
        by_image.setdefault(variant.upload_id, []).append(variant)
    assert set(by_image) == set(ids[:3])
    for _image_id, rendered in by_image.items():
        names = sorted((v.variant, v.format) for v in rendered)
        assert names == [("square", "webp"), ("thumb", "jpeg"), ("thumb", "webp"), ("web", "jpeg"), ("web", "webp")]
        assert all(v.variant_count == 5 for v in rendered)
        for v in rendered:
            decoded = Image.open(io.BytesIO(v.data))
            assert decoded.size == (v.width, v.height)
            assert not decoded.getexif(), "variants carry no metadata"
    web = next(v for v in by_image[ids[0]] if (v.variant, v.format) == ("web", "jpeg"))
    assert (web.width, web.height) == (800, 1200)  # never upscaled, upright
