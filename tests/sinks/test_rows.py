"""Events to rows: pure mapping, no ClickHouse."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.events import (
    ImageMetadata,
    ImageProcessed,
    ImageReady,
    ProcessingFailed,
    ProcessingStarted,
    UploadDeleted,
    UploadReceived,
    VariantRendered,
)
from sinks.rows import INSERT_ORDER, TABLE_COLUMNS, rows_for
from tests.schemas.samples import make_events

FULL = {type(e): e for e in make_events(full=True)}
EMPTY = {type(e): e for e in make_events(full=False)}


def _millis(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _as_dict(table: str, row: list) -> dict:
    assert len(row) == len(TABLE_COLUMNS[table])
    return dict(zip(TABLE_COLUMNS[table], row, strict=True))


def test_every_metadata_field_has_an_images_column():
    metadata = {f.name for f in dataclasses.fields(ImageMetadata)}
    assert metadata <= set(TABLE_COLUMNS["images"])


@pytest.mark.parametrize("table", sorted(TABLE_COLUMNS))
def test_tables_lead_with_ids_and_end_with_version(table):
    columns = TABLE_COLUMNS[table]
    assert columns[:2] == ("upload_id", "photographer_id")
    assert columns[-1] == "version"
    assert len(set(columns)) == len(columns)


def test_upload_received():
    event = FULL[UploadReceived]
    rows = rows_for(event)
    assert list(rows) == ["uploads"]
    (row,) = rows["uploads"]
    values = _as_dict("uploads", row)
    assert values["upload_id"] == event.upload_id
    assert isinstance(values["upload_id"], uuid.UUID)
    assert values["tags"] == ["paris", "night"]
    assert values["title"] == "Tour Eiffel, blue hour"
    assert values["bytes"] == 4_123_456
    assert values["received_at"] == event.received_at
    assert values["received_at"].tzinfo is not None
    assert values["version"] == _millis(event.published_at)


def test_upload_received_defaults_stay_empty():
    values = _as_dict("uploads", rows_for(EMPTY[UploadReceived])["uploads"][0])
    assert values["title"] is None
    assert values["tags"] == []


def test_image_processed_flattens_metadata():
    event = FULL[ImageProcessed]
    (row,) = rows_for(event)["images"]
    values = _as_dict("images", row)
    for name in (f.name for f in dataclasses.fields(ImageMetadata)):
        assert values[name] == getattr(event.metadata, name), name
    assert values["duplicate_of"] == uuid.UUID("11111111-2222-3333-4444-555555555555")
    assert values["duplicate_kind"] == "near"
    assert values["variant_names"] == ["large", "medium", "thumb"]
    assert values["processing_started_at"] == event.processing_started_at
    assert (values["decode_ms"], values["render_ms"]) == (210, 380)
    assert values["version"] == _millis(event.processed_at)
    # "2025-05-31T18:04:11" at +02:00: the wall clock kept as is, the instant two hours earlier
    assert values["captured_at_local"] == datetime(2025, 5, 31, 18, 4, 11, tzinfo=UTC)
    assert values["captured_at_utc"] == datetime(2025, 5, 31, 16, 4, 11, tzinfo=UTC)


def test_image_processed_keeps_unknown_metadata_as_none():
    values = _as_dict("images", rows_for(EMPTY[ImageProcessed])["images"][0])
    for name in (f.name for f in dataclasses.fields(ImageMetadata)):
        assert values[name] is None, name
    assert values["placeholder"] is None
    assert values["duplicate_of"] is None
    assert values["duplicate_kind"] is None
    assert values["captured_at_local"] is None
    assert values["captured_at_utc"] is None


@pytest.mark.parametrize(
    ("text", "offset", "local", "utc"),
    [
        ("2025-05-31T18:04:11", None, datetime(2025, 5, 31, 18, 4, 11, tzinfo=UTC), None),
        ("not a date", "+02:00", None, None),
        ("2025-05-31T18:04:11", "bogus", datetime(2025, 5, 31, 18, 4, 11, tzinfo=UTC), None),
    ],
)
def test_captured_at_parsing(text, offset, local, utc):
    metadata = ImageMetadata(captured_at=text, captured_at_utc_offset=offset)
    event = dataclasses.replace(FULL[ImageProcessed], metadata=metadata)
    values = _as_dict("images", rows_for(event)["images"][0])
    assert values["captured_at"] == text  # verbatim, whatever it is
    assert (values["captured_at_local"], values["captured_at_utc"]) == (local, utc)


def test_image_ready_gives_ready_and_one_variant_row_each():
    event = FULL[ImageReady]
    two = dataclasses.replace(
        event, variants=(*event.variants, dataclasses.replace(event.variants[0], format="jpeg", bytes=30_000))
    )
    rows = rows_for(two)
    (ready,) = rows["ready"]
    ready_values = _as_dict("ready", ready)
    assert ready_values["variant_count"] == 2
    assert ready_values["bytes_out"] == 18_211 + 30_000
    assert ready_values["event_id"] == event.event_id
    assert ready_values["version"] == _millis(event.ready_at)
    variants = [_as_dict("variants", row) for row in rows["variants"]]
    assert [(v["variant"], v["format"], v["bytes"]) for v in variants] == [
        ("thumb", "webp", 18_211),
        ("thumb", "jpeg", 30_000),
    ]
    assert {v["version"] for v in variants} == {_millis(event.ready_at)}
    assert variants[0]["key"] == event.variants[0].key


def test_image_ready_without_variants_gives_no_variant_rows():
    rows = rows_for(EMPTY[ImageReady])
    assert list(rows) == ["ready"]
    values = _as_dict("ready", rows["ready"][0])
    assert (values["variant_count"], values["bytes_out"]) == (0, 0)


def test_processing_failed():
    event = FULL[ProcessingFailed]
    values = _as_dict("failures", rows_for(event)["failures"][0])
    assert values["stage"] == "processing"
    assert values["reason"] == "too_many_pixels"
    assert type(values["reason"]) is str
    assert (values["source_topic"], values["source_partition"], values["source_offset"]) == (
        "photo-uploads",
        3,
        12_345_678_901,
    )
    assert values["attempt"] == 2
    assert values["version"] == _millis(event.failed_at)


def test_processing_failed_keeps_nones():
    values = _as_dict("failures", rows_for(EMPTY[ProcessingFailed])["failures"][0])
    assert values["source_topic"] is None
    assert values["source_partition"] is None
    assert values["source_offset"] is None
    assert values["received_at"] is None
    assert values["reason"] == "internal"


def _deleted(**changes) -> UploadDeleted:
    upload = FULL[UploadReceived]
    fields = {
        "upload_id": upload.upload_id,
        "photographer_id": upload.photographer_id,
        "sha256": upload.sha256,
        "bucket": upload.bucket,
        "original_key": upload.original_key,
        "received_at": upload.received_at,
        "deleted_at": upload.received_at + timedelta(hours=2),
        "gateway_id": "gw-7",
    }
    return UploadDeleted(**(fields | changes))


def test_upload_deleted_names_the_upload_it_deleted():
    event = _deleted()
    rows = rows_for(event)
    assert list(rows) == ["deletions"]
    (row,) = rows["deletions"]
    values = _as_dict("deletions", row)
    assert values == {
        "upload_id": event.upload_id,
        "photographer_id": event.photographer_id,
        "sha256": event.sha256,
        "bucket": event.bucket,
        "original_key": event.original_key,
        "received_at": event.received_at,
        "deleted_at": event.deleted_at,
        "gateway_id": "gw-7",
        "version": _millis(event.deleted_at),
    }
    assert isinstance(values["upload_id"], uuid.UUID)


def test_upload_deleted_times_are_normalised_to_utc():
    paris = timezone(timedelta(hours=2))
    event = _deleted()
    local = _deleted(received_at=event.received_at.astimezone(paris), deleted_at=event.deleted_at.astimezone(paris))
    values = _as_dict("deletions", rows_for(local)["deletions"][0])
    assert (values["received_at"], values["deleted_at"]) == (event.received_at, event.deleted_at)
    assert values["received_at"].utcoffset() == values["deleted_at"].utcoffset() == timedelta(0)
    assert values["version"] == _millis(event.deleted_at)


def test_deletions_are_inserted_before_the_ready_rows():
    # A reader that sees an image ready also sees its deletion when both came in one batch.
    assert INSERT_ORDER[-1] == "ready"
    assert set(INSERT_ORDER) == set(TABLE_COLUMNS)
    assert INSERT_ORDER.index("deletions") < INSERT_ORDER.index("ready")


def test_timestamps_are_normalised_to_utc():
    paris = timezone(timedelta(hours=2))
    event = FULL[UploadReceived]
    local = dataclasses.replace(event, received_at=event.received_at.astimezone(paris))
    values = _as_dict("uploads", rows_for(local)["uploads"][0])
    assert values["received_at"] == event.received_at
    assert values["received_at"].utcoffset() == timedelta(0)


# Not stored: variant bytes (ClickHouse keeps what ImageReady says of them), and the processing-started
# signal (ImageProcessed carries the same moment; the ClickHouse sink does not read photo-processing).
NOT_STORED = (VariantRendered, ProcessingStarted)
STORED = [e for e in (*EMPTY.values(), *FULL.values(), _deleted()) if not isinstance(e, NOT_STORED)]


@pytest.mark.parametrize("event", STORED, ids=lambda e: type(e).__name__)
def test_rows_match_their_columns(event):
    rows = rows_for(event)
    assert rows
    for table, table_rows in rows.items():
        assert all(len(row) == len(TABLE_COLUMNS[table]) for row in table_rows)


@pytest.mark.parametrize(
    "event",
    [FULL[VariantRendered], FULL[ProcessingStarted], 42, object()],
    ids=["VariantRendered", "ProcessingStarted", "int", "object"],
)
def test_unknown_events_raise_type_error(event):
    with pytest.raises(TypeError):
        rows_for(event)
