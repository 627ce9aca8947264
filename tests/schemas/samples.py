"""Sample events for the contract's tests: one of each type, optional fields filled or left at defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas.events import (
    Event,
    FailureReason,
    ImageMetadata,
    ImageProcessed,
    ImageReady,
    ProcessingFailed,
    ProcessingStarted,
    Stage,
    StoredVariant,
    UploadDeleted,
    UploadReceived,
    VariantRendered,
)
from schemas.topics import TOPIC_BY_EVENT

# Millisecond precision: what timestamp-millis keeps, so round trips compare equal.
T0 = datetime(2025, 6, 1, 9, 30, 15, 123_000, tzinfo=UTC)
UPLOAD_ID = uuid.UUID("0b6f3c8e-6a1f-5d2b-9d8e-3f1c2a4b5c6d")
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def make_events(*, full: bool) -> list[Event]:
    """One event of each type; ``full`` fills every optional field, else leaves defaults."""
    metadata = (
        ImageMetadata(
            width=6000,
            height=4000,
            format="jpeg",
            bands=3,
            has_alpha=False,
            bytes=4_123_456,
            megapixels=24.0,
            icc_profile="sRGB IEC61966-2.1",
            camera_make="FUJIFILM",
            camera_model="X-T5",
            lens="XF16-55mmF2.8 R LM WR",
            iso=400,
            exposure_time=1 / 250,
            f_number=5.6,
            focal_length_mm=23.0,
            focal_length_35mm=35,
            captured_at="2025-05-31T18:04:11",
            captured_at_utc_offset="+02:00",
            orientation=1,
            software="Digital Camera X-T5 Ver2.00",
            gps_latitude=48.8584,
            gps_longitude=2.2945,
            gps_altitude=35.2,
        )
        if full
        else ImageMetadata()
    )
    return [
        UploadReceived(
            upload_id=UPLOAD_ID,
            photographer_id="ph-007",
            filename="DSCF0001 (1).JPG" if full else "",
            content_type="image/jpeg",
            bytes=4_123_456,
            sha256=SHA,
            bucket="photostream",
            original_key=f"originals/ph-007/{UPLOAD_ID}.jpg",
            title="Tour Eiffel, blue hour" if full else None,
            tags=("paris", "night") if full else (),
            received_at=_at(0),
            stored_at=_at(180),
            published_at=_at(190),
            gateway_id="gw-1",
        ),
        VariantRendered(
            upload_id=UPLOAD_ID,
            photographer_id="ph-007",
            variant="thumb",
            format="webp",
            content_type="image/webp",
            width=320,
            height=213,
            data=bytes(range(256)) * 2 if full else b"",
            sha256=SHA,
            variant_count=3,
            received_at=_at(0),
            rendered_at=_at(900),
        ),
        ImageProcessed(
            upload_id=UPLOAD_ID,
            photographer_id="ph-007",
            sha256=SHA,
            metadata=metadata,
            phash="f0e1d2c3b4a59687",
            placeholder="LEHV6nWB2yk8pyo0adR*.7kCMdnj" if full else None,
            duplicate_of=uuid.UUID("11111111-2222-3333-4444-555555555555") if full else None,
            duplicate_kind="near" if full else None,
            variant_names=("large", "medium", "thumb") if full else (),
            received_at=_at(0),
            processing_started_at=_at(300),
            processed_at=_at(950),
            decode_ms=210,
            metadata_ms=12,
            hash_ms=35,
            render_ms=380,
        ),
        ImageReady(
            upload_id=UPLOAD_ID,
            photographer_id="ph-007",
            event_id=f"ready-{UPLOAD_ID}",
            variants=(
                StoredVariant(
                    variant="thumb",
                    format="webp",
                    content_type="image/webp",
                    width=320,
                    height=213,
                    bytes=18_211,
                    key=f"derivatives/ph-007/{UPLOAD_ID}/thumb.webp",
                    sha256=SHA,
                ),
            )
            if full
            else (),
            received_at=_at(0),
            ready_at=_at(1400),
        ),
        ProcessingFailed(
            upload_id=UPLOAD_ID,
            photographer_id="ph-007",
            stage=Stage.PROCESSING if full else "gateway",
            reason=FailureReason.TOO_MANY_PIXELS if full else FailureReason.INTERNAL,
            detail="image is 30000x30000, limit is 200 megapixels",
            source_topic="photo-uploads" if full else None,
            source_partition=3 if full else None,
            source_offset=12_345_678_901 if full else None,
            received_at=_at(0) if full else None,
            failed_at=_at(400),
            attempt=2 if full else 1,
        ),
        # No optional fields: the minimal one has empty strings and a delete at the very instant of
        # the upload, the inclusive edge of ``UploadDeleted.deletes``.
        UploadDeleted(
            upload_id=UPLOAD_ID,
            photographer_id="ph-007",
            sha256=SHA if full else "",
            bucket="photostream" if full else "",
            original_key=f"originals/ph-007/{UPLOAD_ID}" if full else "",
            received_at=_at(0),
            deleted_at=_at(86_400_000) if full else _at(0),
            gateway_id="gw-2" if full else "",
        ),
        ProcessingStarted(
            upload_id=UPLOAD_ID,
            photographer_id="ph-007",
            received_at=_at(0),
            processing_started_at=_at(300) if full else _at(0),
        ),
    ]


ALL_EVENTS: list[Event] = make_events(full=True) + make_events(full=False)


def event_id(event: Event) -> str:
    """Readable pytest ids: class name and whether optional fields are filled."""
    filled = isinstance(event, UploadReceived) and event.title is not None
    filled |= isinstance(event, ProcessingFailed) and event.source_topic is not None
    filled |= isinstance(event, ImageProcessed) and event.placeholder is not None
    filled |= isinstance(event, ImageReady) and bool(event.variants)
    filled |= isinstance(event, VariantRendered) and bool(event.data)
    filled |= isinstance(event, UploadDeleted) and bool(event.original_key)
    filled |= isinstance(event, ProcessingStarted) and event.processing_started_at != event.received_at
    return f"{type(event).__name__}-{'full' if filled else 'minimal'}"


def topic_of(event: Event) -> str:
    """The topic an event is produced to."""
    return TOPIC_BY_EVENT[type(event)]
