"""A synthetic pipeline run for the ClickHouse tests: events plus the truth they encode.

Three photographers send seven photos each. Per photographer, uploads 0-3 complete (ImageProcessed and
ImageReady), 4 fails in processing, 5 is processed and then fails in the S3 sink, 6 is still queued. On top:
the first photographer's upload 3 failed once before a retry completed it, the third photographer's queued
upload was processed but is not ready yet, some uploads are exact or near duplicates, and one in four
images has no camera EXIF. Every duration is distinct per upload so the per-stage milliseconds can be
checked one by one, and timestamps sit just before ``now`` so queries with relative windows find them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from photostream.clients import clickhouse_client
from photostream.config import ClickHouseSettings
from schemas.events import (
    Event,
    FailureReason,
    ImageMetadata,
    ImageProcessed,
    ImageReady,
    ProcessingFailed,
    Stage,
    StoredVariant,
    UploadDeleted,
    UploadReceived,
)
from sinks.rows import INSERT_ORDER, TABLE_COLUMNS, rows_for

DATABASE = "photostream"
PHOTOGRAPHERS = ("ph-alice", "ph-bob", "ph-carol")
UPLOADS_PER_PHOTOGRAPHER = 7
CAMERAS: tuple[tuple[str, str, str | None] | None, ...] = (
    ("FUJIFILM", "X-T5", "XF16-55mmF2.8 R LM WR"),
    ("Canon", "EOS R6", "RF24-105mm F4 L IS USM"),
    ("FUJIFILM", "X-T5", None),
    None,  # no EXIF at all
)
DUPLICATES = {("ph-alice", 1): "exact", ("ph-bob", 1): "near", ("ph-carol", 1): "exact", ("ph-carol", 2): "near"}
VARIANTS = (("web", 200_000), ("thumb", 20_000), ("square", 8_000))
SHA = "ab" * 32


@dataclass(frozen=True)
class Truth:
    """What one upload should look like in ``image_stages``."""

    upload_id: uuid.UUID
    photographer_id: str
    index: int
    status: str
    received_at: datetime
    published_at: datetime | None
    processing_started_at: datetime | None = None
    processed_at: datetime | None = None
    ready_at: datetime | None = None
    failed_at: datetime | None = None
    bytes_in: int | None = 0
    bytes_out: int | None = None
    camera: tuple[str, str, str | None] | None = None
    duplicate_kind: str | None = None

    def ms(self, start: datetime | None, end: datetime | None) -> int | None:
        """Milliseconds from ``start`` to ``end``, None when either is unknown."""
        return None if start is None or end is None else (end - start) // timedelta(milliseconds=1)

    @property
    def stage_ms(self) -> dict[str, int | None]:
        """The per-stage durations ``image_stages`` should show."""
        return {
            "gateway_ms": self.ms(self.received_at, self.published_at),
            "queue_ms": self.ms(self.published_at, self.processing_started_at),
            "processing_ms": self.ms(self.processing_started_at, self.processed_at),
            "storage_ms": self.ms(self.processed_at, self.ready_at),
            "end_to_end_ms": self.ms(self.received_at, self.ready_at),
        }


@dataclass(frozen=True)
class Pipeline:
    """The events of a run, in the order the stages emit them, and the truth per upload."""

    events: tuple[Event, ...]
    truth: tuple[Truth, ...]
    processed: dict[uuid.UUID, ImageProcessed] = field(default_factory=dict)

    @property
    def uploaded(self) -> list[Truth]:
        """The uploads the gateway published (all but the dead letter from before publishing)."""
        return [t for t in self.truth if t.published_at is not None]

    def with_status(self, status: str) -> list[Truth]:
        """The uploads whose final status is ``status``."""
        return [t for t in self.truth if t.status == status]

    @property
    def failure_events(self) -> list[ProcessingFailed]:
        """Every dead letter, including the one a retry later overcame."""
        return [e for e in self.events if isinstance(e, ProcessingFailed)]


def build_pipeline(now: datetime | None = None) -> Pipeline:
    """Build the synthetic run, its newest upload received 30 s before ``now``.

    Args:
        now: Defaults to the current time, so relative windows (last hour, today) match.
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    events: list[Event] = []
    truth: list[Truth] = []
    processed: dict[uuid.UUID, ImageProcessed] = {}
    for p, photographer in enumerate(PHOTOGRAPHERS):
        for j in range(UPLOADS_PER_PHOTOGRAPHER):
            k = p * UPLOADS_PER_PHOTOGRAPHER + j
            upload_id = uuid.uuid5(uuid.NAMESPACE_URL, f"photostream-test/{photographer}/{j}")
            received = now - timedelta(seconds=30 + 25 * (20 - k))
            published = received + timedelta(milliseconds=100 + 10 * k)
            started = published + timedelta(milliseconds=200 + 30 * k)
            done = started + timedelta(milliseconds=800 + 50 * k)
            ready = done + timedelta(milliseconds=300 + 20 * k)
            bytes_in = 4_000_000 + 1_000 * k
            camera = CAMERAS[k % len(CAMERAS)]
            duplicate = DUPLICATES.get((photographer, j))
            upload_event = _upload(upload_id, photographer, j, bytes_in, received, published)
            events.append(upload_event)
            row = {"upload_id": upload_id, "photographer_id": photographer, "index": k}
            row |= {"received_at": received, "published_at": published, "bytes_in": bytes_in}
            image = _processed(upload_id, photographer, k, camera, duplicate, received, started, done)
            if photographer == "ph-alice" and j == 3:  # failed once, then a retry completed it
                first_failure = started - timedelta(milliseconds=100)
                reason = FailureReason.MISSING_ORIGINAL
                events.append(_failed(upload_id, photographer, received, first_failure, Stage.PROCESSING, reason))
                row["failed_at"] = first_failure
            if j <= 3:
                events += [image, _ready(upload_id, photographer, k, received, ready)]
                processed[upload_id] = image
                bytes_out = sum(size + k for _, size in VARIANTS)
                row |= {"processing_started_at": started, "processed_at": done, "ready_at": ready}
                truth.append(
                    Truth(**row, status="completed", bytes_out=bytes_out, camera=camera, duplicate_kind=duplicate)
                )
            elif j == 4 and p == 1:
                # ph-bob's is a dead letter from before the upload was published (no UploadReceived), lacking
                # received_at as such a one may: it counts in the minute it failed
                failed_at = started + timedelta(milliseconds=40)
                events.remove(upload_event)
                reason = FailureReason.UNSUPPORTED
                events.append(_failed(upload_id, photographer, None, failed_at, Stage.GATEWAY, reason))
                row |= {"received_at": failed_at, "published_at": None, "bytes_in": None}
                truth.append(Truth(**row, status="failed", failed_at=failed_at))
            elif j == 4:
                failed_at = started + timedelta(milliseconds=40)
                reason = (FailureReason.CORRUPT, FailureReason.UNSUPPORTED, FailureReason.TOO_MANY_PIXELS)[p]
                events.append(_failed(upload_id, photographer, received, failed_at, Stage.PROCESSING, reason))
                truth.append(Truth(**row, status="failed", failed_at=failed_at))
            elif j == 5:
                failed_at = done + timedelta(milliseconds=500)
                events += [image, _failed(upload_id, photographer, received, failed_at, Stage.S3_SINK)]
                processed[upload_id] = image
                row |= {"processing_started_at": started, "processed_at": done}
                truth.append(Truth(**row, status="failed", failed_at=failed_at, camera=camera))
            elif photographer == "ph-carol":  # processed, variants not yet durable
                events.append(image)
                processed[upload_id] = image
                row |= {"processing_started_at": started, "processed_at": done}
                truth.append(Truth(**row, status="queued", camera=camera))
            else:
                truth.append(Truth(**row, status="queued"))
    return Pipeline(events=tuple(events), truth=tuple(truth), processed=processed)


def insert_events(client: Any, events: Iterable[Event], database: str = DATABASE) -> None:
    """Insert the rows of ``events``, one batch per table, as the sink does."""
    batches: dict[str, list[list[Any]]] = defaultdict(list)
    for event in events:
        for table, rows in rows_for(event).items():
            batches[table].extend(rows)
    for table in INSERT_ORDER:
        if batches.get(table):
            client.insert(f"{database}.{table}", batches[table], column_names=TABLE_COLUMNS[table])


def deletion(upload: Any, after: timedelta = timedelta(minutes=1)) -> UploadDeleted:
    """The photographer's deletion of ``upload`` (a ``Truth`` or any event of it), ``after`` it was received."""
    return UploadDeleted(
        upload_id=upload.upload_id,
        photographer_id=upload.photographer_id,
        sha256=SHA,
        bucket="photostream",
        original_key=f"originals/{upload.photographer_id}/{upload.upload_id}.jpg",
        received_at=upload.received_at,
        deleted_at=upload.received_at + after,
        gateway_id="gw-1",
    )


@contextmanager
def chdb(path: Path) -> Iterator[Any]:
    """A chDB client on a fresh path, closed on exit: one process holds one chDB path at a time."""
    client = clickhouse_client(ClickHouseSettings(dsn=f"chdb://{path / 'clickhouse'}"))
    try:
        yield client
    finally:
        client.close()


def _upload(
    upload_id: uuid.UUID, photographer: str, j: int, size: int, received: datetime, published: datetime
) -> UploadReceived:
    return UploadReceived(
        upload_id=upload_id,
        photographer_id=photographer,
        filename=f"IMG_{j:04d}.JPG",
        content_type="image/jpeg",
        bytes=size,
        sha256=SHA,
        bucket="photostream",
        original_key=f"originals/{photographer}/{upload_id}.jpg",
        title=f"photo {j}" if j % 2 else None,
        tags=("test", photographer) if j % 2 else (),
        received_at=received,
        stored_at=published - timedelta(milliseconds=10),
        published_at=published,
        gateway_id="gw-1",
    )


def _processed(
    upload_id: uuid.UUID,
    photographer: str,
    k: int,
    camera: tuple[str, str, str | None] | None,
    duplicate: str | None,
    received: datetime,
    started: datetime,
    done: datetime,
) -> ImageProcessed:
    make, model, lens = camera or (None, None, None)
    metadata = ImageMetadata(
        width=6000,
        height=4000,
        format="jpeg",
        bands=3,
        has_alpha=False,
        bytes=4_000_000 + 1_000 * k,
        megapixels=24.0 if k % 2 else 12.2,
        camera_make=make,
        camera_model=model,
        lens=lens,
        iso=100 * (k + 1) if camera else None,
        captured_at=f"2025-05-31T{(7 + 3 * k) % 24:02d}:04:11" if camera else None,
        captured_at_utc_offset="+02:00" if camera and k % 2 else None,
    )
    return ImageProcessed(
        upload_id=upload_id,
        photographer_id=photographer,
        sha256=SHA,
        metadata=metadata,
        phash=f"{k:016x}",
        duplicate_of=uuid.uuid5(uuid.NAMESPACE_URL, f"photostream-test/{photographer}/0") if duplicate else None,
        duplicate_kind=duplicate,
        variant_names=tuple(name for name, _ in VARIANTS),
        received_at=received,
        processing_started_at=started,
        processed_at=done,
        decode_ms=200 + k,
        metadata_ms=10,
        hash_ms=30,
        render_ms=400 + k,
    )


def _ready(upload_id: uuid.UUID, photographer: str, k: int, received: datetime, ready: datetime) -> ImageReady:
    variants = tuple(
        StoredVariant(
            variant=name,
            format="webp",
            content_type="image/webp",
            width=size // 100,
            height=size // 150,
            bytes=size + k,
            key=f"derivatives/{photographer}/{upload_id}/{name}.webp",
            sha256=SHA,
        )
        for name, size in VARIANTS
    )
    return ImageReady(
        upload_id=upload_id,
        photographer_id=photographer,
        event_id=f"ready-{upload_id}",
        variants=variants,
        received_at=received,
        ready_at=ready,
    )


def _failed(
    upload_id: uuid.UUID,
    photographer: str,
    received: datetime | None,
    failed_at: datetime,
    stage: str,
    reason: FailureReason = FailureReason.INTERNAL,
    attempt: int = 1,
) -> ProcessingFailed:
    return ProcessingFailed(
        upload_id=upload_id,
        photographer_id=photographer,
        stage=stage,
        reason=reason,
        detail=f"synthetic {reason.value} at {stage}",
        source_topic="photo-uploads",
        source_partition=3,
        source_offset=1_000 + attempt,
        received_at=received,
        failed_at=failed_at,
        attempt=attempt,
    )
