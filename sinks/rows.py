"""Events to ClickHouse rows: pure mapping, no client, so it is testable in milliseconds.

Each table's column order lives in ``TABLE_COLUMNS`` and the DDL in ``sinks.clickhouse_schema``; a test
checks that the two agree. Every row carries ``version``, the event's own timestamp in epoch milliseconds,
which ReplacingMergeTree uses to collapse replays and let a later re-processing win.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import Event, ImageProcessed, ImageReady, ProcessingFailed, UploadDeleted, UploadReceived

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

# ImageMetadata, flattened into columns of the same names.
_METADATA_COLUMNS = (
    "width",
    "height",
    "format",
    "bands",
    "has_alpha",
    "bytes",
    "megapixels",
    "icc_profile",
    "camera_make",
    "camera_model",
    "lens",
    "iso",
    "exposure_time",
    "f_number",
    "focal_length_mm",
    "focal_length_35mm",
    "captured_at",
    "captured_at_utc_offset",
    "orientation",
    "software",
    "gps_latitude",
    "gps_longitude",
    "gps_altitude",
)

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "uploads": (
        "upload_id",
        "photographer_id",
        "filename",
        "content_type",
        "bytes",
        "sha256",
        "bucket",
        "original_key",
        "title",
        "tags",
        "received_at",
        "stored_at",
        "published_at",
        "gateway_id",
        "version",
    ),
    "images": (
        "upload_id",
        "photographer_id",
        "sha256",
        "phash",
        "placeholder",
        "duplicate_of",
        "duplicate_kind",
        "variant_names",
        *_METADATA_COLUMNS,
        # parsed from captured_at (+ offset)
        "captured_at_local",
        "captured_at_utc",
        "received_at",
        "processing_started_at",
        "processed_at",
        "decode_ms",
        "metadata_ms",
        "hash_ms",
        "render_ms",
        "version",
    ),
    "ready": (
        "upload_id",
        "photographer_id",
        "event_id",
        "variant_count",
        "bytes_out",
        "received_at",
        "ready_at",
        "version",
    ),
    "variants": (
        "upload_id",
        "photographer_id",
        "variant",
        "format",
        "content_type",
        "width",
        "height",
        "bytes",
        "key",
        "sha256",
        "received_at",
        "ready_at",
        "version",
    ),
    "failures": (
        "upload_id",
        "photographer_id",
        "stage",
        "reason",
        "detail",
        "source_topic",
        "source_partition",
        "source_offset",
        "received_at",
        "failed_at",
        "attempt",
        "version",
    ),
    # One row per deleted incarnation of an upload: received_at names which (a later upload of the same
    # content has the same id and a later received_at).
    "deletions": (
        "upload_id",
        "photographer_id",
        "sha256",
        "bucket",
        "original_key",
        "received_at",
        "deleted_at",
        "gateway_id",
        "version",
    ),
}
"""Column order of each table as ``rows_for`` fills it; pass it as ``column_names`` to ``client.insert``."""

INSERT_ORDER: tuple[str, ...] = (*(table for table in TABLE_COLUMNS if table != "ready"), "ready")
"""The order a flush inserts its tables in. ``ready`` goes last: its row marks an image completed, so a
reader that sees it (the gateway's status) finds the ``variants`` and ``images`` rows of the same batch, and
the ``deletions`` row of an image deleted in the same batch (never ready without its deletion)."""


def rows_for(event: Event) -> dict[str, list[list[Any]]]:
    """Map one event to the rows it adds, per table.

    Tables the event adds no row to are left out (an ``ImageReady`` with no variants gives no ``variants``
    key), so every list can be passed to ``client.insert`` as is.

    Args:
        event: An ``UploadReceived``, ``ImageProcessed``, ``ImageReady``, ``ProcessingFailed`` or
            ``UploadDeleted``.

    Returns:
        Table name to rows; each row is a list in ``TABLE_COLUMNS[table]`` order, with UUIDs as
        ``uuid.UUID``, timestamps as UTC-aware ``datetime`` and ``version`` as epoch milliseconds.

    Raises:
        TypeError: Any other event type. ``VariantRendered`` carries bytes for S3; what ClickHouse keeps of
            a variant arrives with ``ImageReady``. ``ProcessingStarted`` is a signal for live followers;
            ``ImageProcessed`` carries the same moment.
    """
    mapper = _MAPPERS.get(type(event))
    if mapper is None:
        raise TypeError(f"no ClickHouse rows for {type(event).__name__}")
    tables = mapper(event)
    return {table: [_ordered(table, values) for values in rows] for table, rows in tables.items() if rows}


def _uploads(event: UploadReceived) -> dict[str, list[dict[str, Any]]]:
    return {
        "uploads": [
            {
                "upload_id": event.upload_id,
                "photographer_id": event.photographer_id,
                "filename": event.filename,
                "content_type": event.content_type,
                "bytes": event.bytes,
                "sha256": event.sha256,
                "bucket": event.bucket,
                "original_key": event.original_key,
                "title": event.title,
                "tags": list(event.tags),
                "received_at": _utc(event.received_at),
                "stored_at": _utc(event.stored_at),
                "published_at": _utc(event.published_at),
                "gateway_id": event.gateway_id,
                "version": _millis(event.published_at),
            }
        ]
    }


def _images(event: ImageProcessed) -> dict[str, list[dict[str, Any]]]:
    metadata = event.metadata
    local, utc = _captured(metadata.captured_at, metadata.captured_at_utc_offset)
    return {
        "images": [
            {
                "upload_id": event.upload_id,
                "photographer_id": event.photographer_id,
                "sha256": event.sha256,
                "phash": event.phash,
                "placeholder": event.placeholder,
                "duplicate_of": event.duplicate_of,
                "duplicate_kind": event.duplicate_kind,
                "variant_names": list(event.variant_names),
                **{name: getattr(metadata, name) for name in _METADATA_COLUMNS},
                "captured_at_local": local,
                "captured_at_utc": utc,
                "received_at": _utc(event.received_at),
                "processing_started_at": _utc(event.processing_started_at),
                "processed_at": _utc(event.processed_at),
                "decode_ms": event.decode_ms,
                "metadata_ms": event.metadata_ms,
                "hash_ms": event.hash_ms,
                "render_ms": event.render_ms,
                "version": _millis(event.processed_at),
            }
        ]
    }


def _ready(event: ImageReady) -> dict[str, list[dict[str, Any]]]:
    common = {
        "upload_id": event.upload_id,
        "photographer_id": event.photographer_id,
        "received_at": _utc(event.received_at),
        "ready_at": _utc(event.ready_at),
        "version": _millis(event.ready_at),
    }
    ready = {
        **common,
        "event_id": event.event_id,
        "variant_count": len(event.variants),
        "bytes_out": sum(v.bytes for v in event.variants),
    }
    variants = [
        {
            **common,
            "variant": v.variant,
            "format": v.format,
            "content_type": v.content_type,
            "width": v.width,
            "height": v.height,
            "bytes": v.bytes,
            "key": v.key,
            "sha256": v.sha256,
        }
        for v in event.variants
    ]
    return {"ready": [ready], "variants": variants}


def _failures(event: ProcessingFailed) -> dict[str, list[dict[str, Any]]]:
    return {
        "failures": [
            {
                "upload_id": event.upload_id,
                "photographer_id": event.photographer_id,
                "stage": str(event.stage),
                "reason": event.reason.value,
                "detail": event.detail,
                "source_topic": event.source_topic,
                "source_partition": event.source_partition,
                "source_offset": event.source_offset,
                "received_at": None if event.received_at is None else _utc(event.received_at),
                "failed_at": _utc(event.failed_at),
                "attempt": event.attempt,
                "version": _millis(event.failed_at),
            }
        ]
    }


def _deletions(event: UploadDeleted) -> dict[str, list[dict[str, Any]]]:
    return {
        "deletions": [
            {
                "upload_id": event.upload_id,
                "photographer_id": event.photographer_id,
                "sha256": event.sha256,
                "bucket": event.bucket,
                "original_key": event.original_key,
                "received_at": _utc(event.received_at),
                "deleted_at": _utc(event.deleted_at),
                "gateway_id": event.gateway_id,
                "version": _millis(event.deleted_at),
            }
        ]
    }


_MAPPERS: dict[type, Callable[[Any], dict[str, list[dict[str, Any]]]]] = {
    UploadReceived: _uploads,
    ImageProcessed: _images,
    ImageReady: _ready,
    ProcessingFailed: _failures,
    UploadDeleted: _deletions,
}


def _ordered(table: str, values: dict[str, Any]) -> list[Any]:
    # A KeyError here means a mapper and TABLE_COLUMNS drifted apart; the unit tests catch it.
    return [values[column] for column in TABLE_COLUMNS[table]]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _millis(moment: datetime) -> int:
    # Integer arithmetic: float timestamps can be off by one millisecond.
    return (moment - _EPOCH) // _MILLISECOND


def _captured(text: str | None, offset: str | None) -> tuple[datetime | None, datetime | None]:
    """Parse the camera's local capture time, and the instant when its UTC offset is known.

    The local time is stored as if it were UTC, so ``toHour(captured_at_local)`` is the hour on the
    photographer's clock wherever the photo was taken.
    """
    if not text:
        return None, None
    try:
        wall = datetime.fromisoformat(text)
    except ValueError:  # the string is kept verbatim in captured_at; only the parsed columns stay empty
        return None, None
    if wall.tzinfo is not None:  # an ISO string that already carries its offset
        return wall.replace(tzinfo=UTC), wall.astimezone(UTC)
    local = wall.replace(tzinfo=UTC)
    if not offset:
        return local, None
    try:
        instant = datetime.fromisoformat(f"{text}{offset}").astimezone(UTC)
    except ValueError:
        instant = None
    return local, instant
