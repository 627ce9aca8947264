"""The ClickHouse schema on the embedded chDB engine: migrations, replays, and what each view answers."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import FailureReason, ImageMetadata, ImageProcessed, ImageReady, ProcessingFailed, Stage
from sinks.clickhouse_schema import DERIVED_TABLES, MIGRATIONS, TABLES, VIEWS, migrate, refresh_rollups
from sinks.rows import TABLE_COLUMNS
from tests.sinks.pipeline_data import (
    DATABASE,
    PHOTOGRAPHERS,
    UPLOADS_PER_PHOTOGRAPHER,
    Pipeline,
    Truth,
    build_pipeline,
    chdb,
    deletion,
    insert_events,
)

pytestmark = pytest.mark.integration

DB = DATABASE


@pytest.fixture
def client(tmp_path):
    with chdb(tmp_path) as client:
        yield client


@pytest.fixture
def pipeline() -> Pipeline:
    return build_pipeline()


@pytest.fixture
def midday_pipeline() -> Pipeline:
    """The run at noon today: ten minutes later is still the same day, whenever the tests run."""
    return build_pipeline(datetime.now(UTC).replace(hour=12, minute=0))


@pytest.fixture
def loaded(client, pipeline):
    """A migrated database holding the pipeline twice over: the run and a full replay of it."""
    migrate(client, DB)
    insert_events(client, pipeline.events)
    insert_events(client, pipeline.events)
    return client


def _dicts(client, sql: str) -> list[dict]:
    result = client.query(sql)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _snapshot(
    client, db: str = DB, views: tuple[str, ...] = VIEWS, columns: dict[str, tuple[str, ...]] | None = None
) -> dict[str, list[tuple]]:
    """Every row of each view; of ``columns[view]`` only when given (what an older version of the view had)."""
    selected = {view: ", ".join(columns[view]) if columns else "*" for view in views}
    return {view: client.query(f"SELECT {selected[view]} FROM {db}.{view} ORDER BY ALL").result_rows for view in views}


def _columns(client, views: tuple[str, ...], db: str = DB) -> dict[str, tuple[str, ...]]:
    return {view: tuple(client.query(f"SELECT * FROM {db}.{view} LIMIT 0").column_names) for view in views}


def _linear_quantile(values: list[int], level: float) -> float:
    # What ClickHouse's quantile() computes below its 8192-value reservoir: linear interpolation.
    ordered = sorted(values)
    position = level * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _naive(moment):
    # clickhouse-connect hands back UTC columns as naive datetimes.
    return None if moment is None else moment.replace(tzinfo=None)


# -- migrations ------------------------------------------------------------------------------------


def test_migration_versions_increase_and_name_the_database():
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions))
    for migration in MIGRATIONS:
        assert all("{db}." in step for step in migration.statements if isinstance(step, str))


def test_migrate_rejects_a_database_name_that_is_not_an_identifier():
    with pytest.raises(ValueError, match="identifier"):
        migrate(None, "photostream; DROP TABLE x")


def test_migrate_creates_every_table_and_view_once(client):
    assert migrate(client, DB) == [m.version for m in MIGRATIONS]
    assert migrate(client, DB) == []

    tables = client.query("SELECT name, engine FROM system.tables WHERE database = %(db)s", {"db": DB})
    engines = dict(tables.result_rows)
    assert {name: engines[name] for name in TABLES} == dict.fromkeys(TABLES, "ReplacingMergeTree")
    assert {name: engines[name] for name in VIEWS} == dict.fromkeys(VIEWS, "View")
    recorded = client.query(f"SELECT version, description FROM {DB}.schema_migrations FINAL ORDER BY version")
    assert recorded.result_rows == [(m.version, m.description) for m in MIGRATIONS]


def test_table_columns_match_the_ddl(client):
    migrate(client, DB)
    for table in TABLES:
        columns = client.query(
            "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(table)s ORDER BY position",
            {"db": DB, "table": table},
        ).result_rows
        assert tuple(name for (name,) in columns) == TABLE_COLUMNS[table]


def test_sorting_keys_start_with_photographer_and_upload(client):
    migrate(client, DB)
    keys = dict(
        client.query(
            "SELECT name, sorting_key FROM system.tables WHERE database = %(db)s AND engine LIKE '%%MergeTree'",
            {"db": DB},
        ).result_rows
    )
    assert all(keys[table].startswith("photographer_id, upload_id") for table in TABLES)
    assert keys["variants"] == "photographer_id, upload_id, variant, format"
    assert keys["failures"] == "photographer_id, upload_id, stage"


def test_migrate_after_a_crash_before_the_record_is_harmless(client, pipeline):
    migrate(client, DB)
    insert_events(client, pipeline.events)
    snapshot = _snapshot(client)
    # As if every statement ran but no record was written: the statements run again over live tables.
    client.command(f"TRUNCATE TABLE {DB}.schema_migrations")
    assert migrate(client, DB) == [m.version for m in MIGRATIONS]
    assert client.query(f"SELECT count() FROM {DB}.uploads FINAL").result_rows == [(len(pipeline.uploaded),)]
    assert _snapshot(client) == snapshot


def test_upgrading_a_populated_database_keeps_every_row_and_answer(client, pipeline):
    """A database at version 2 with live data, as a running pipeline has it, then upgraded to the newest."""
    assert migrate(client, DB, up_to=2) == [1, 2]
    insert_events(client, pipeline.events)
    version_2_views = tuple(view for view in VIEWS if view not in ("queued_uploads", "capture_hours"))
    version_2_columns = _columns(client, version_2_views)
    before = _snapshot(client, views=version_2_views)
    assert migrate(client, DB) == [m.version for m in MIGRATIONS if m.version > 2]
    migrate(client, "fresh")
    insert_events(client, pipeline.events, "fresh")
    # Views may gain columns (migration 5: deleted_at, deleted); the ones they had answer as before.
    assert _snapshot(client, views=version_2_views, columns=version_2_columns) == before
    assert _snapshot(client) == _snapshot(client, "fresh")
    for table in TABLES:
        (key,) = client.query(
            "SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": DB, "t": table},
        ).result_rows[0]
        assert key.startswith("toDate("), (table, key)
    assert client.query(f"EXISTS TABLE {DB}.uploads__daily").result_rows == [(0,)]


# -- replays -----------------------------------------------------------------------------------------


def test_a_replay_changes_no_view(client, pipeline):
    migrate(client, DB)
    for table in (*TABLES, *DERIVED_TABLES):  # keep the replay in separate parts: FINAL, not a merge, collapses it
        client.command(f"SYSTEM STOP MERGES {DB}.{table}")
    insert_events(client, pipeline.events)
    first = _snapshot(client)
    insert_events(client, pipeline.events)

    uploads = len(pipeline.uploaded)
    assert client.query(f"SELECT count() FROM {DB}.uploads").result_rows == [(2 * uploads,)]
    assert client.query(f"SELECT count() FROM {DB}.uploads FINAL").result_rows == [(uploads,)]
    assert _snapshot(client) == first

    for table in (*TABLES, *DERIVED_TABLES):
        client.command(f"SYSTEM START MERGES {DB}.{table}")
        client.command(f"OPTIMIZE TABLE {DB}.{table} FINAL")
    assert client.query(f"SELECT count() FROM {DB}.uploads").result_rows == [(uploads,)]
    assert _snapshot(client) == first


def test_throughput_per_minute_counts_each_image_once(loaded, pipeline):
    rows = _dicts(loaded, f"SELECT * FROM {DB}.throughput_per_minute")
    completed, failed = pipeline.with_status("completed"), pipeline.with_status("failed")
    assert sum(r["uploads"] for r in rows) == len(pipeline.truth) == 21
    assert sum(r["images"] for r in rows) == len(completed) == 12
    assert sum(r["failures"] for r in rows) == len(failed) == 6
    assert sum(r["bytes_in"] for r in rows) == sum(t.bytes_in or 0 for t in pipeline.truth)
    assert sum(r["bytes_out"] for r in rows) == sum(t.bytes_out for t in completed)
    per_photographer = Counter()
    for r in rows:
        per_photographer[r["photographer_id"]] += r["images"]
    assert per_photographer == dict.fromkeys(PHOTOGRAPHERS, 4)


def test_throughput_percentiles_are_those_of_the_completed_images(loaded, pipeline):
    rows = _dicts(loaded, f"SELECT * FROM {DB}.throughput_per_minute")
    assert len(rows) > len(PHOTOGRAPHERS)  # the run spans several minutes
    for row in rows:
        latencies = [
            t.stage_ms["end_to_end_ms"]
            for t in pipeline.with_status("completed")
            if t.photographer_id == row["photographer_id"]
            and t.received_at.replace(second=0, microsecond=0, tzinfo=None) == row["minute"]
        ]
        if not latencies:
            assert (row["p50_ms"], row["p95_ms"], row["p99_ms"]) == (None, None, None)
            continue
        assert min(latencies) <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= max(latencies)
        for level, column in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            assert row[column] == pytest.approx(_linear_quantile(latencies, level))


def test_image_stages_status_and_milliseconds(loaded, pipeline):
    rows = {r["upload_id"]: r for r in _dicts(loaded, f"SELECT * FROM {DB}.image_stages")}
    assert len(rows) == len(pipeline.truth)
    statuses = Counter(r["status"] for r in rows.values())
    assert statuses == {"completed": 12, "failed": 6, "queued": 3}
    for truth in pipeline.truth:
        row = rows[truth.upload_id]
        assert row["status"] == truth.status, truth
        assert row["photographer_id"] == truth.photographer_id
        for column, expected in truth.stage_ms.items():
            assert row[column] == expected, (column, truth)
        for column in ("received_at", "published_at", "processing_started_at", "processed_at", "ready_at"):
            assert row[column] == _naive(getattr(truth, column)), (column, truth)
        assert row["failed_at"] == _naive(truth.failed_at)
        assert row["bytes_in"] == truth.bytes_in
        assert row["bytes_out"] == truth.bytes_out


def test_image_stages_queued_and_failed_carry_nulls_not_defaults(loaded):
    rows = _dicts(loaded, f"SELECT * FROM {DB}.image_stages WHERE status != 'completed'")
    for row in rows:
        assert row["ready_at"] is None
        assert row["storage_ms"] is None
        assert row["end_to_end_ms"] is None
    queued = [r for r in rows if r["status"] == "queued"]
    assert all(r["failed_at"] is None and r["failure_reason"] is None for r in queued)
    # ph-carol's queued image was processed, its variants not yet durable
    assert sorted(r["processing_ms"] is not None for r in queued) == [False, False, True]
    failed = [r for r in rows if r["status"] == "failed"]
    assert Counter(r["failure_stage"] for r in failed) == {"processing": 2, "gateway": 1, "s3-sink": 3}


def test_a_retry_that_completes_wins_over_its_earlier_failure(loaded):
    rows = _dicts(loaded, f"SELECT * FROM {DB}.image_stages WHERE failure_reason = 'missing_original'")
    assert [(r["photographer_id"], r["status"]) for r in rows] == [("ph-alice", "completed")]


def test_stage_latency_per_minute(loaded, pipeline):
    rows = _dicts(loaded, f"SELECT * FROM {DB}.stage_latency_per_minute ORDER BY minute")
    assert sum(r["uploads"] for r in rows) == len(pipeline.truth)
    assert sum(r["images"] for r in rows) == len(pipeline.with_status("completed"))
    for row in rows:
        for stage in ("gateway", "queue", "processing", "storage", "end_to_end"):
            p50, p95, p99 = (row[f"{stage}_p{p}_ms"] for p in (50, 95, 99))
            if p50 is not None:
                assert 0 < p50 <= p95 <= p99
    # every upload passed the gateway, so its percentiles are never empty
    assert all(r["gateway_p50_ms"] is not None for r in rows)


def test_failures_by_reason(loaded, pipeline):
    rows = {(r["stage"], r["reason"]): r for r in _dicts(loaded, f"SELECT * FROM {DB}.failures_by_reason")}
    expected = Counter((str(e.stage), e.reason.value) for e in pipeline.failure_events)
    assert {key: r["failures"] for key, r in rows.items()} == expected
    assert rows[("s3-sink", "internal")]["photographers"] == 3
    last = max(e.failed_at for e in pipeline.failure_events if e.stage == Stage.S3_SINK)
    assert rows[("s3-sink", "internal")]["last_failed_at"] == _naive(last)


def test_cameras(loaded, pipeline):
    rows = _dicts(loaded, f"SELECT * FROM {DB}.cameras")
    expected = Counter()
    photographers: dict[tuple, set[str]] = {}
    for truth in pipeline.truth:
        if truth.processed_at is not None and truth.camera is not None:
            expected[truth.camera] += 1
            photographers.setdefault(truth.camera, set()).add(truth.photographer_id)
    assert {(r["camera_make"], r["camera_model"], r["lens"]): r["images"] for r in rows} == expected
    assert {(r["camera_make"], r["camera_model"], r["lens"]): r["photographers"] for r in rows} == {
        camera: len(names) for camera, names in photographers.items()
    }


def test_duplicates_per_photographer(loaded, pipeline):
    rows = {r["photographer_id"]: r for r in _dicts(loaded, f"SELECT * FROM {DB}.duplicates_per_photographer")}
    for photographer in PHOTOGRAPHERS:
        images = [t for t in pipeline.truth if t.photographer_id == photographer and t.processed_at is not None]
        kinds = Counter(t.duplicate_kind for t in images)
        row = rows[photographer]
        assert row["images"] == len(images)
        assert (row["exact_duplicates"], row["near_duplicates"]) == (kinds["exact"], kinds["near"])
        assert row["duplicate_ratio"] == pytest.approx((kinds["exact"] + kinds["near"]) / len(images), abs=1e-4)
    assert (rows["ph-carol"]["exact_duplicates"], rows["ph-carol"]["near_duplicates"]) == (1, 1)


# -- re-processing and arrival order -------------------------------------------------------------------


def test_a_later_reprocessing_replaces_the_image_row(client, pipeline):
    migrate(client, DB)
    insert_events(client, pipeline.events)
    truth = pipeline.with_status("completed")[0]
    first: ImageProcessed = pipeline.processed[truth.upload_id]
    later = timedelta(minutes=2)
    again = dataclasses.replace(
        first,
        metadata=ImageMetadata(camera_make="NIKON CORPORATION", camera_model="NIKON Z 8"),
        processing_started_at=first.processing_started_at + later,
        processed_at=first.processed_at + later + timedelta(milliseconds=250),
    )
    ready = next(e for e in pipeline.events if isinstance(e, ImageReady) and e.upload_id == truth.upload_id)
    ready_again = dataclasses.replace(ready, ready_at=again.processed_at + timedelta(milliseconds=400))
    insert_events(client, [again, ready_again])
    insert_events(client, [first, ready])  # a late replay of the older run must not win back

    where = f"upload_id = '{truth.upload_id}'"
    images = _dicts(client, f"SELECT camera_make, processed_at FROM {DB}.images FINAL WHERE {where}")
    assert images == [{"camera_make": "NIKON CORPORATION", "processed_at": _naive(again.processed_at)}]
    stage = _dicts(client, f"SELECT processing_ms, storage_ms, status FROM {DB}.image_stages WHERE {where}")
    assert stage == [{"processing_ms": truth.stage_ms["processing_ms"] + 250, "storage_ms": 400, "status": "completed"}]
    cameras = dict(client.query(f"SELECT camera_make, sum(images) FROM {DB}.cameras GROUP BY ALL").result_rows)
    assert cameras["NIKON CORPORATION"] == 1
    assert client.query(f"SELECT count() FROM {DB}.images FINAL").result_rows == [(len(pipeline.processed),)]


def test_a_later_failure_at_the_same_stage_replaces_the_earlier(client, pipeline):
    migrate(client, DB)
    failure = pipeline.failure_events[0]
    retry = dataclasses.replace(
        failure, reason=FailureReason.INTERNAL, attempt=2, failed_at=failure.failed_at + timedelta(seconds=30)
    )
    insert_events(client, [retry, failure])
    rows = _dicts(client, f"SELECT reason, attempt FROM {DB}.failures FINAL")
    assert rows == [{"reason": "internal", "attempt": 2}]


def test_an_image_whose_upload_row_is_late_still_shows(client, pipeline):
    # The sink consumes four topics independently; photo-ready may be written before photo-uploads.
    migrate(client, DB)
    truth = pipeline.with_status("completed")[1]
    ready = next(e for e in pipeline.events if isinstance(e, ImageReady) and e.upload_id == truth.upload_id)
    insert_events(client, [pipeline.processed[truth.upload_id], ready])
    (row,) = _dicts(client, f"SELECT * FROM {DB}.image_stages")
    assert (row["status"], row["received_at"], row["gateway_ms"]) == ("completed", _naive(truth.received_at), None)
    assert row["end_to_end_ms"] == truth.stage_ms["end_to_end_ms"]
    (minute,) = _dicts(client, f"SELECT uploads, images, bytes_in FROM {DB}.throughput_per_minute")
    assert minute == {"uploads": 1, "images": 1, "bytes_in": 0}


def test_a_failure_without_received_at_counts_in_the_minute_it_failed(client, pipeline):
    migrate(client, DB)
    failed_at = pipeline.truth[0].received_at
    failure = ProcessingFailed(
        upload_id=uuid.uuid4(),
        photographer_id="ph-dave",
        stage=Stage.GATEWAY,
        reason=FailureReason.UNSUPPORTED,
        detail="not an image",
        failed_at=failed_at,
    )
    insert_events(client, [failure])
    (row,) = _dicts(client, f"SELECT status, received_at, failed_at FROM {DB}.image_stages")
    assert row == {"status": "failed", "received_at": _naive(failed_at), "failed_at": _naive(failed_at)}
    (minute,) = _dicts(client, f"SELECT minute, uploads, failures FROM {DB}.throughput_per_minute")
    assert minute == {"minute": _naive(failed_at).replace(second=0), "uploads": 1, "failures": 1}


def test_queued_uploads_are_exactly_the_queued_stages(client, pipeline):
    migrate(client, DB)
    for table in (*TABLES, *DERIVED_TABLES):  # unmerged parts: the open-looking rows of done uploads must drop out
        client.command(f"SYSTEM STOP MERGES {DB}.{table}")
    insert_events(client, pipeline.events)
    insert_events(client, pipeline.events)
    queued = {r["upload_id"] for r in _dicts(client, f"SELECT upload_id FROM {DB}.queued_uploads")}
    assert queued == {t.upload_id for t in pipeline.with_status("queued")}
    assert len(queued) == 3


# -- deletions -----------------------------------------------------------------------------------------

# One upload deleted at each stage: waiting for a worker, processed but not stored, ready, failed.
DELETED_AT_EVERY_STAGE = (("ph-alice", 6, "deleted"), ("ph-carol", 6, "deleted"), ("ph-bob", 2, "completed"))
DELETED_AFTER_FAILING = ("ph-alice", 5, "failed")
LIBRARY_VIEWS = ("cameras", "duplicates_per_photographer", "capture_hours")


def _truth(pipeline: Pipeline, photographer: str, index: int) -> Truth:
    k = PHOTOGRAPHERS.index(photographer) * UPLOADS_PER_PHOTOGRAPHER + index
    return next(t for t in pipeline.truth if t.index == k)


def _deleted_at_every_stage(pipeline: Pipeline) -> list[Truth]:
    stages = (*DELETED_AT_EVERY_STAGE, DELETED_AFTER_FAILING)
    return [_truth(pipeline, photographer, index) for photographer, index, _ in stages]


def _library(pipeline: Pipeline, deleted: set[uuid.UUID]) -> dict[str, dict]:
    """What the library-like views should answer, from the events: processed images not deleted."""
    images = [e for e in pipeline.processed.values() if e.upload_id not in deleted]
    cameras: dict[tuple, list[str]] = {}
    duplicates: dict[str, Counter] = {}
    hours: dict[int, Counter] = {}
    for image in images:
        m = image.metadata
        if m.camera_make is not None:
            cameras.setdefault((m.camera_make, m.camera_model, m.lens), []).append(image.photographer_id)
        duplicates.setdefault(image.photographer_id, Counter())[image.duplicate_kind or "none"] += 1
        if m.captured_at is not None:
            hour = hours.setdefault(int(m.captured_at[11:13]), Counter())
            hour["images"] += 1
            hour["over_20_mp"] += m.megapixels >= 20
    return {
        "cameras": {camera: (len(names), len(set(names))) for camera, names in cameras.items()},
        "duplicates_per_photographer": {
            name: (kinds.total(), kinds["exact"], kinds["near"]) for name, kinds in duplicates.items()
        },
        "capture_hours": {hour: (counts["images"], counts["over_20_mp"]) for hour, counts in hours.items()},
    }


def _library_views(client, db: str = DB) -> dict[str, dict]:
    cameras = client.query(f"SELECT camera_make, camera_model, lens, images, photographers FROM {db}.cameras")
    duplicates = client.query(
        f"SELECT photographer_id, images, exact_duplicates, near_duplicates FROM {db}.duplicates_per_photographer"
    )
    hours = client.query(f"SELECT hour, images, over_20_mp FROM {db}.capture_hours")
    return {
        "cameras": {tuple(row[:3]): tuple(row[3:]) for row in cameras.result_rows},
        "duplicates_per_photographer": {row[0]: tuple(row[1:]) for row in duplicates.result_rows},
        "capture_hours": {row[0]: tuple(row[1:]) for row in hours.result_rows},
    }


def _reupload(pipeline: Pipeline, truth: Truth, later: timedelta) -> list:
    """The same photo sent again ``later``: the same upload id, every event of it that much later."""
    events = [e for e in pipeline.events if e.upload_id == truth.upload_id and not isinstance(e, ProcessingFailed)]
    shifted = []
    for event in events:
        times = {
            f.name: getattr(event, f.name) + later
            for f in dataclasses.fields(event)
            if f.name.endswith("_at") and getattr(event, f.name) is not None and f.name != "captured_at"
        }
        shifted.append(dataclasses.replace(event, **times))
    return shifted


def test_deleted_uploads_leave_the_library_views_and_the_queue_at_every_stage(client, pipeline):
    migrate(client, DB)
    insert_events(client, pipeline.events)
    refresh_rollups(client, DB)  # the deletions land in days the rollups hold: those days must be read live
    work = _snapshot(client, views=("stage_latency_per_minute", "failures_by_reason"))
    deleted = _deleted_at_every_stage(pipeline)
    insert_events(client, [deletion(t) for t in deleted])

    for moment in ("before the next refresh", "after it"):
        stages = {r["upload_id"]: r for r in _dicts(client, f"SELECT * FROM {DB}.image_stages")}
        for truth, (_, _, status) in zip(deleted, (*DELETED_AT_EVERY_STAGE, DELETED_AFTER_FAILING), strict=True):
            assert stages[truth.upload_id]["status"] == status, (moment, truth)
            assert stages[truth.upload_id]["deleted_at"] == _naive(truth.received_at + timedelta(minutes=1))
        assert Counter(r["status"] for r in stages.values()) == {
            "completed": 12,
            "failed": 6,
            "deleted": 2,
            "queued": 1,
        }
        assert sum(r["deleted_at"] is not None for r in stages.values()) == len(deleted)

        queued = {r["upload_id"] for r in _dicts(client, f"SELECT upload_id FROM {DB}.queued_uploads")}
        assert queued == {_truth(pipeline, "ph-bob", 6).upload_id}, moment
        assert _library_views(client) == _library(pipeline, {t.upload_id for t in deleted}), moment
        assert _library_views(client) != _library(pipeline, set())  # the deletions made a difference

        # The pipeline's work is counted whatever became of the upload since.
        (totals,) = _dicts(
            client,
            f"SELECT sum(uploads) AS uploads, sum(images) AS images, sum(failures) AS failures, "
            f"sum(deleted) AS deleted FROM {DB}.throughput_per_minute",
        )
        assert totals == {"uploads": 21, "images": 12, "failures": 6, "deleted": len(deleted)}, moment
        assert _snapshot(client, views=("stage_latency_per_minute", "failures_by_reason")) == work, moment
        refresh_rollups(client, DB)


@pytest.mark.parametrize("later", [timedelta(minutes=10), timedelta(days=1)], ids=["same day", "next day"])
def test_a_reupload_after_a_delete_counts_again(client, midday_pipeline, later):
    pipeline = midday_pipeline
    migrate(client, DB)
    insert_events(client, pipeline.events)
    library = _library_views(client)
    truth = _truth(pipeline, "ph-bob", 2)
    insert_events(client, [deletion(truth)])
    refresh_rollups(client, DB)
    upload, processed, ready = _reupload(pipeline, truth, later)
    where = f"upload_id = '{truth.upload_id}'"

    insert_events(client, [upload])  # sent again, not processed yet: queued, and the old image still deleted
    queued = {r["upload_id"]: r["received_at"] for r in _dicts(client, f"SELECT * FROM {DB}.queued_uploads")}
    assert queued[truth.upload_id] == _naive(upload.received_at)
    assert _library_views(client) != library

    insert_events(client, [processed, ready])
    rows = _dicts(client, f"SELECT received_at, status, deleted_at FROM {DB}.image_stages WHERE {where} ORDER BY ALL")
    assert rows == [
        {"received_at": _naive(truth.received_at), "status": "completed", "deleted_at": _naive(truth.received_at)
         + timedelta(minutes=1)},
        {"received_at": _naive(upload.received_at), "status": "completed", "deleted_at": None},
    ]  # fmt: skip
    assert _library_views(client) == library
    refresh_rollups(client, DB)
    assert _library_views(client) == library
    (totals,) = _dicts(
        client, f"SELECT sum(uploads) AS u, sum(images) AS i, sum(deleted) AS d FROM {DB}.throughput_per_minute"
    )
    assert totals == {"u": 22, "i": 13, "d": 1}
    assert truth.upload_id not in {r["upload_id"] for r in _dicts(client, f"SELECT * FROM {DB}.queued_uploads")}


def test_a_deletion_written_before_the_uploads_rows_counts_the_same(client, pipeline):
    # The sink consumes its topics independently: photo-deleted may be written before photo-uploads.
    deletions = [deletion(t) for t in _deleted_at_every_stage(pipeline)]
    migrate(client, DB)
    insert_events(client, pipeline.events)
    insert_events(client, deletions)
    migrate(client, "early")
    insert_events(client, deletions, "early")
    insert_events(client, pipeline.events, "early")
    assert _snapshot(client, "early") == _snapshot(client)


def test_a_replayed_deletion_changes_no_view(client, pipeline):
    migrate(client, DB)
    for table in (*TABLES, *DERIVED_TABLES):  # separate parts: FINAL, not a merge, collapses the replay
        client.command(f"SYSTEM STOP MERGES {DB}.{table}")
    deletions = [deletion(t) for t in _deleted_at_every_stage(pipeline)]
    insert_events(client, [*pipeline.events, *deletions])
    first = _snapshot(client)
    insert_events(client, deletions)
    assert client.query(f"SELECT count() FROM {DB}.deletions").result_rows == [(2 * len(deletions),)]
    assert client.query(f"SELECT count() FROM {DB}.deletions FINAL").result_rows == [(len(deletions),)]
    assert _snapshot(client) == first
    refresh_rollups(client, DB)
    assert _snapshot(client) == first


def test_queued_uploads_leave_out_deleted_ones_merged_or_not(client, pipeline):
    migrate(client, DB)
    for table in (*TABLES, *DERIVED_TABLES):
        client.command(f"SYSTEM STOP MERGES {DB}.{table}")
    waiting, storing = _truth(pipeline, "ph-alice", 6), _truth(pipeline, "ph-carol", 6)
    insert_events(client, [*pipeline.events, deletion(waiting), deletion(storing)])
    expected = {_truth(pipeline, "ph-bob", 6).upload_id}
    assert {r["upload_id"] for r in _dicts(client, f"SELECT upload_id FROM {DB}.queued_uploads")} == expected
    for table in (*TABLES, *DERIVED_TABLES):
        client.command(f"SYSTEM START MERGES {DB}.{table}")
        client.command(f"OPTIMIZE TABLE {DB}.{table} FINAL")
    assert {r["upload_id"] for r in _dicts(client, f"SELECT upload_id FROM {DB}.queued_uploads")} == expected


def test_upgrading_from_version_4_keeps_every_answer_and_then_takes_deletions(client, pipeline):
    """A running database at version 4, its rollups refreshed, upgraded; then deletions arrive."""
    assert migrate(client, DB, up_to=4) == [1, 2, 3, 4]
    insert_events(client, pipeline.events)
    refresh_rollups(client, DB)
    columns = _columns(client, VIEWS)
    before = _snapshot(client)
    assert migrate(client, DB) == [m.version for m in MIGRATIONS if m.version > 4]
    assert _snapshot(client, columns=columns) == before
    lifecycle = client.query(f"SELECT deleted_at FROM {DB}.upload_lifecycle FINAL").result_rows
    assert lifecycle
    assert all(deleted_at is None for (deleted_at,) in lifecycle)  # old parts read the new column as NULL

    deletions = [deletion(t) for t in _deleted_at_every_stage(pipeline)]
    insert_events(client, deletions)
    migrate(client, "fresh")
    insert_events(client, [*pipeline.events, *deletions], "fresh")
    assert _snapshot(client) == _snapshot(client, "fresh")
    assert _library_views(client) == _library(pipeline, {d.upload_id for d in deletions})
    for db in (DB, "fresh"):
        refresh_rollups(client, db)
    assert _snapshot(client) == _snapshot(client, "fresh")


def test_every_deletion_of_an_upload_is_kept(client, midday_pipeline):
    """Deleted, sent again, deleted again the same day: two deletions, two deleted uploads, after any merge."""
    pipeline = midday_pipeline
    migrate(client, DB)
    truth = _truth(pipeline, "ph-bob", 2)
    again = _reupload(pipeline, truth, timedelta(minutes=10))
    insert_events(client, [*pipeline.events, deletion(truth), *again, deletion(again[0])])
    for table in (*TABLES, *DERIVED_TABLES):
        client.command(f"OPTIMIZE TABLE {DB}.{table} FINAL")
    where = f"upload_id = '{truth.upload_id}'"
    assert client.query(f"SELECT received_at FROM {DB}.deletions WHERE {where} ORDER BY ALL").result_rows == [
        (_naive(truth.received_at),),
        (_naive(again[0].received_at),),
    ]
    rows = client.query(f"SELECT status, deleted_at IS NOT NULL FROM {DB}.image_stages WHERE {where}").result_rows
    assert rows == [("completed", True), ("completed", True)]
    refresh_rollups(client, DB)
    assert _library_views(client) == _library(pipeline, {truth.upload_id})
