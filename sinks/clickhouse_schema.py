"""The ClickHouse schema: tables the sink writes, views analysts read, and the migrations that build them.

Replays collapse by construction. Every base table is a ``ReplacingMergeTree(version)`` whose sorting key is
the identity of a fact (an upload, an upload's variant, an upload's failure at one stage) and whose
``version`` is the event's own timestamp in epoch milliseconds: a replayed event lands on the same key with
the same version and collapses into one row, and a later re-processing carries a later timestamp and wins.
Collapsing happens at merge time, so readers of the base tables use ``FINAL``.

Sized for 30+ days of a 60,000-photos-a-day service (migration 3):

- Every base table is partitioned by the DAY of the upload's ``received_at``, which every version of a row
  shares, so a replay always lands in the partition of the row it repeats (ReplacingMergeTree collapses only
  within a partition). A time window prunes whole days, and ``FINAL`` has only today's unmerged parts to
  merge: a day older than an hour is force-merged into one part (``min_age_to_force_merge_seconds``), which
  ``FINAL`` reads as it is. Readers run with ``do_not_merge_across_partitions_select_final`` (see
  ``photostream.warehouse``), which is exact here because no key spans two partitions.
- ``upload_lifecycle`` holds one row per upload, filled in at insert time: a materialized view on each base
  table writes the stage columns that table knows into an ``AggregatingMergeTree`` whose columns are
  ``SimpleAggregateFunction(max, ...)``. ``max`` is idempotent, so a replayed event inserted twice changes
  nothing, and a later re-processing (later timestamps) wins, as in the base tables. Its key starts with
  ``received_at``, so "the last hour" reads the last hour's rows and nothing else. ``image_stages`` reads it
  with ``FINAL`` and computes the stage milliseconds; the per-minute views group that.
- The all-time views (``cameras``, ``duplicates_per_photographer``, ``failures_by_reason``, ``capture_hours``)
  read daily rollups for the days that did not change since the rollup was refreshed, and rows only for the
  others (migration 4, ``sinks.clickhouse_rollups``).
- Deletions (migration 5) keep the history: a ``deletions`` row names the incarnation deleted (upload id and
  ``received_at``; the same content uploaded again later is a new incarnation), the lifecycle gets its
  ``deleted_at`` from it, and the views counting the library (``queued_uploads``, ``cameras``,
  ``duplicates_per_photographer``, ``capture_hours``) leave deleted images out, while those counting the pipeline's
  work keep them and say how many are deleted.

The failures partition by ``ifNull(received_at, failed_at)``: a dead letter that does not know when its upload
arrived is counted in the day (and minute) it failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sinks.clickhouse_rollups import MIGRATION_4_ROLLUPS, MIGRATION_5_ROLLUPS, ROLLUPS

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Step = Callable[["Client", str], None]
"""A migration step that moves data (``step(client, database)``) rather than one DDL statement."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema, applied once per database and recorded in ``schema_migrations``.

    Attributes:
        version: Position in the history; applied in increasing order.
        description: What the step does, stored with its record.
        statements: DDL templates with ``{db}`` for the database name, or data steps called with the client and
            the database; each must be idempotent on its own (``IF NOT EXISTS``, ``CREATE OR REPLACE``, rows that
            collapse) so a crash between a statement and the record is harmless.
    """

    version: int
    description: str
    statements: tuple[str | Step, ...]

    def sql(self, database: str) -> list[str | Step]:
        """Return the steps with ``{db}`` replaced by ``database`` in the DDL ones.

        Args:
            database: A plain identifier (letters, digits, underscores).

        Returns:
            The DDL statements and data steps, in order.
        """
        db = _identifier(database)
        # str.replace, not str.format: DDL may one day contain braces of its own (maps, settings).
        return [step.replace("{db}", db) if isinstance(step, str) else step for step in self.statements]


_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS {db}.uploads (
        upload_id UUID,
        photographer_id LowCardinality(String),
        filename String,
        content_type LowCardinality(String),
        bytes UInt64,
        sha256 String,
        bucket LowCardinality(String),
        original_key String,
        title Nullable(String),
        tags Array(String),
        received_at DateTime64(3, 'UTC'),
        stored_at DateTime64(3, 'UTC'),
        published_at DateTime64(3, 'UTC'),
        gateway_id LowCardinality(String),
        version UInt64
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(received_at)
    ORDER BY (photographer_id, upload_id)
    """,
    # EXIF-derived integers keep Avro's Int32: broken EXIF is nulled upstream, but a wider
    # signed type never rejects a value the contract allows.
    """
    CREATE TABLE IF NOT EXISTS {db}.images (
        upload_id UUID,
        photographer_id LowCardinality(String),
        sha256 String,
        phash String,
        placeholder Nullable(String),
        duplicate_of Nullable(UUID),
        duplicate_kind LowCardinality(Nullable(String)),
        variant_names Array(String),
        width Nullable(Int32),
        height Nullable(Int32),
        format LowCardinality(Nullable(String)),
        bands Nullable(Int32),
        has_alpha Nullable(Bool),
        bytes Nullable(Int64),
        megapixels Nullable(Float64),
        icc_profile LowCardinality(Nullable(String)),
        camera_make LowCardinality(Nullable(String)),
        camera_model LowCardinality(Nullable(String)),
        lens LowCardinality(Nullable(String)),
        iso Nullable(Int32),
        exposure_time Nullable(Float64),
        f_number Nullable(Float64),
        focal_length_mm Nullable(Float64),
        focal_length_35mm Nullable(Int32),
        captured_at Nullable(String),
        captured_at_utc_offset Nullable(String),
        orientation Nullable(Int32),
        software LowCardinality(Nullable(String)),
        gps_latitude Nullable(Float64),
        gps_longitude Nullable(Float64),
        gps_altitude Nullable(Float64),
        -- captured_at parsed: the camera's wall clock stored as if UTC, and the instant when the offset is known
        captured_at_local Nullable(DateTime('UTC')),
        captured_at_utc Nullable(DateTime('UTC')),
        received_at DateTime64(3, 'UTC'),
        processing_started_at DateTime64(3, 'UTC'),
        processed_at DateTime64(3, 'UTC'),
        decode_ms UInt32,
        metadata_ms UInt32,
        hash_ms UInt32,
        render_ms UInt32,
        version UInt64
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(received_at)
    ORDER BY (photographer_id, upload_id)
    """,
    """
    CREATE TABLE IF NOT EXISTS {db}.ready (
        upload_id UUID,
        photographer_id LowCardinality(String),
        event_id String,
        variant_count UInt16,
        bytes_out UInt64,
        received_at DateTime64(3, 'UTC'),
        ready_at DateTime64(3, 'UTC'),
        version UInt64
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(received_at)
    ORDER BY (photographer_id, upload_id)
    """,
    """
    CREATE TABLE IF NOT EXISTS {db}.variants (
        upload_id UUID,
        photographer_id LowCardinality(String),
        variant LowCardinality(String),
        format LowCardinality(String),
        content_type LowCardinality(String),
        width UInt32,
        height UInt32,
        bytes UInt64,
        key String,
        sha256 String,
        received_at DateTime64(3, 'UTC'),
        ready_at DateTime64(3, 'UTC'),
        version UInt64
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(received_at)
    ORDER BY (photographer_id, upload_id, variant, format)
    """,
    # received_at is unknown for some dead letters; failed_at stands in for the partition only.
    """
    CREATE TABLE IF NOT EXISTS {db}.failures (
        upload_id UUID,
        photographer_id LowCardinality(String),
        stage LowCardinality(String),
        reason LowCardinality(String),
        detail String,
        source_topic Nullable(String),
        source_partition Nullable(Int32),
        source_offset Nullable(Int64),
        received_at Nullable(DateTime64(3, 'UTC')),
        failed_at DateTime64(3, 'UTC'),
        attempt UInt16,
        version UInt64
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(ifNull(received_at, failed_at))
    ORDER BY (photographer_id, upload_id, stage)
    """,
)

# One row per upload. The four tables are stacked (UNION ALL, NULL where a table has no such column) and
# grouped by upload instead of joined: nothing depends on join_use_nulls (a LEFT JOIN's missing side would
# read as 1970 and 0, not NULL), an upload that failed at two stages is not doubled, and an image whose
# ImageReady row arrived before its UploadReceived row still shows. Aggregates skip NULLs, so each column
# takes the value of the one table that has it. The stacked failure time is named failure_at, not failed_at:
# an aggregate's argument must not resolve to another aggregate's alias (ILLEGAL_AGGREGATION).
_IMAGE_STAGES = """
    CREATE OR REPLACE VIEW {db}.image_stages AS
    SELECT
        photographer_id,
        upload_id,
        -- a dead letter may not know when its upload arrived: it is counted in the minute it failed
        ifNull(min(received_at), min(failure_at)) AS received_at,
        max(stored_at) AS stored_at,
        max(published_at) AS published_at,
        max(processing_started_at) AS processing_started_at,
        max(processed_at) AS processed_at,
        max(ready_at) AS ready_at,
        max(failure_at) AS failed_at,
        argMaxIf(failure_stage, failure_at, failure_at IS NOT NULL) AS failure_stage,
        argMaxIf(failure_reason, failure_at, failure_at IS NOT NULL) AS failure_reason,
        multiIf(ready_at IS NOT NULL, 'completed', failed_at IS NOT NULL, 'failed', 'queued') AS status,
        max(bytes_in) AS bytes_in,
        max(bytes_out) AS bytes_out,
        max(variant_count) AS variant_count,
        dateDiff('millisecond', received_at, published_at) AS gateway_ms,
        dateDiff('millisecond', published_at, processing_started_at) AS queue_ms,
        dateDiff('millisecond', processing_started_at, processed_at) AS processing_ms,
        dateDiff('millisecond', processed_at, ready_at) AS storage_ms,
        dateDiff('millisecond', received_at, ready_at) AS end_to_end_ms
    FROM (
        SELECT
            photographer_id, upload_id, received_at, stored_at, published_at,
            NULL AS processing_started_at, NULL AS processed_at, NULL AS ready_at,
            NULL AS failure_at, NULL AS failure_stage, NULL AS failure_reason,
            bytes AS bytes_in, NULL AS bytes_out, NULL AS variant_count
        FROM {db}.uploads FINAL
        UNION ALL
        SELECT
            photographer_id, upload_id, received_at, NULL, NULL,
            processing_started_at, processed_at, NULL,
            NULL, NULL, NULL,
            NULL, NULL, NULL
        FROM {db}.images FINAL
        UNION ALL
        SELECT
            photographer_id, upload_id, received_at, NULL, NULL,
            NULL, NULL, ready_at,
            NULL, NULL, NULL,
            NULL, bytes_out, variant_count
        FROM {db}.ready FINAL
        UNION ALL
        SELECT
            photographer_id, upload_id, received_at, NULL, NULL,
            NULL, NULL, NULL,
            failed_at, stage, reason,
            NULL, NULL, NULL
        FROM {db}.failures FINAL
    )
    GROUP BY photographer_id, upload_id
"""

# Percentiles use quantile() per level rather than quantiles(): over a group with no completed image,
# quantile() answers NULL where quantiles() answers nan. Percentiles do not add up across minutes; ask
# image_stages for a percentile over a longer window.
_THROUGHPUT_PER_MINUTE = """
    CREATE OR REPLACE VIEW {db}.throughput_per_minute AS
    SELECT
        photographer_id,
        toStartOfMinute(received_at) AS minute,
        count() AS uploads,
        countIf(status = 'completed') AS images,
        countIf(status = 'failed') AS failures,
        sum(ifNull(bytes_in, 0)) AS bytes_in,
        sum(ifNull(bytes_out, 0)) AS bytes_out,
        quantile(0.5)(end_to_end_ms) AS p50_ms,
        quantile(0.95)(end_to_end_ms) AS p95_ms,
        quantile(0.99)(end_to_end_ms) AS p99_ms
    FROM {db}.image_stages
    GROUP BY photographer_id, minute
"""

_STAGE_LATENCY_PER_MINUTE = """
    CREATE OR REPLACE VIEW {db}.stage_latency_per_minute AS
    SELECT
        toStartOfMinute(received_at) AS minute,
        count() AS uploads,
        countIf(status = 'completed') AS images,
        quantile(0.5)(gateway_ms) AS gateway_p50_ms,
        quantile(0.95)(gateway_ms) AS gateway_p95_ms,
        quantile(0.99)(gateway_ms) AS gateway_p99_ms,
        quantile(0.5)(queue_ms) AS queue_p50_ms,
        quantile(0.95)(queue_ms) AS queue_p95_ms,
        quantile(0.99)(queue_ms) AS queue_p99_ms,
        quantile(0.5)(processing_ms) AS processing_p50_ms,
        quantile(0.95)(processing_ms) AS processing_p95_ms,
        quantile(0.99)(processing_ms) AS processing_p99_ms,
        quantile(0.5)(storage_ms) AS storage_p50_ms,
        quantile(0.95)(storage_ms) AS storage_p95_ms,
        quantile(0.99)(storage_ms) AS storage_p99_ms,
        quantile(0.5)(end_to_end_ms) AS end_to_end_p50_ms,
        quantile(0.95)(end_to_end_ms) AS end_to_end_p95_ms,
        quantile(0.99)(end_to_end_ms) AS end_to_end_p99_ms
    FROM {db}.image_stages
    GROUP BY minute
"""

_FAILURES_BY_REASON = """
    CREATE OR REPLACE VIEW {db}.failures_by_reason AS
    SELECT
        stage,
        reason,
        count() AS failures,
        uniqExact(upload_id) AS uploads,
        uniqExact(photographer_id) AS photographers,
        max(failed_at) AS last_failed_at
    FROM {db}.failures FINAL
    GROUP BY stage, reason
"""

_CAMERAS = """
    CREATE OR REPLACE VIEW {db}.cameras AS
    SELECT
        camera_make,
        camera_model,
        lens,
        count() AS images,
        uniqExact(photographer_id) AS photographers
    FROM {db}.images FINAL
    WHERE camera_make IS NOT NULL
    GROUP BY camera_make, camera_model, lens
"""

_DUPLICATES_PER_PHOTOGRAPHER = """
    CREATE OR REPLACE VIEW {db}.duplicates_per_photographer AS
    SELECT
        photographer_id,
        count() AS images,
        countIf(duplicate_kind = 'exact') AS exact_duplicates,
        countIf(duplicate_kind = 'near') AS near_duplicates,
        round((exact_duplicates + near_duplicates) / images, 4) AS duplicate_ratio
    FROM {db}.images FINAL
    GROUP BY photographer_id
"""

# Migration 3: day partitions for the base tables (rebuilt and copied, see ``repartition``), and the per-upload
# lifecycle that replaces the query-time stacking of migration 2's image_stages.
_DAILY_MERGE_SETTINGS = "SETTINGS min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1"

_DAILY_LAYOUT = {
    "uploads": ("toDate(received_at)", "(photographer_id, upload_id)"),
    "images": ("toDate(received_at)", "(photographer_id, upload_id)"),
    "ready": ("toDate(received_at)", "(photographer_id, upload_id)"),
    "variants": ("toDate(received_at)", "(photographer_id, upload_id, variant, format)"),
    "failures": ("toDate(ifNull(received_at, failed_at))", "(photographer_id, upload_id, stage)"),
}


def repartition(client: Client, database: str) -> None:
    """Rebuild each base table partitioned by day, moving its rows over; safe to run again after a crash.

    A table already partitioned by day is left alone. Otherwise its rows are copied into a new table with the
    new layout, the two are exchanged atomically, and the rows are copied once more (rows a running sink
    inserted during the first copy; repeats collapse like any replay) before the old table is dropped.
    """
    db = _identifier(database)
    for table, (partition_key, order_by) in _DAILY_LAYOUT.items():
        current = client.query(
            "SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {name:String}",
            parameters={"db": db, "name": table},
        ).result_rows
        staging = f"{db}.{table}__daily"
        if current and current[0][0].replace(" ", "") == partition_key.replace(" ", ""):
            client.command(f"DROP TABLE IF EXISTS {staging}")  # left by a crash after the exchange
            continue
        client.command(
            f"CREATE TABLE IF NOT EXISTS {staging} AS {db}.{table} ENGINE = ReplacingMergeTree(version) "
            f"PARTITION BY {partition_key} ORDER BY {order_by} {_DAILY_MERGE_SETTINGS}"
        )
        client.command(f"INSERT INTO {staging} SELECT * FROM {db}.{table}")  # noqa: S608 (identifiers checked)
        client.command(f"EXCHANGE TABLES {db}.{table} AND {staging}")
        client.command(f"INSERT INTO {db}.{table} SELECT * FROM {staging}")  # noqa: S608
        client.command(f"DROP TABLE {staging}")


_UPLOAD_LIFECYCLE = f"""
    CREATE TABLE IF NOT EXISTS {{db}}.upload_lifecycle (
        received_at DateTime64(3, 'UTC'),
        photographer_id LowCardinality(String),
        upload_id UUID,
        stored_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
        published_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
        processing_started_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
        processed_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
        ready_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
        failed_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
        -- (stage, reason) of the latest failure. Not a stored Tuple: FINAL reads a tuple's subcolumns unmerged.
        last_failure AggregateFunction(argMax, Tuple(String, String), DateTime64(3, 'UTC')),
        bytes_in SimpleAggregateFunction(max, Nullable(UInt64)),
        bytes_out SimpleAggregateFunction(max, Nullable(UInt64)),
        variant_count SimpleAggregateFunction(max, Nullable(UInt16))
    )
    ENGINE = AggregatingMergeTree
    PARTITION BY toDate(received_at)
    ORDER BY (received_at, photographer_id, upload_id)
    {_DAILY_MERGE_SETTINGS}
"""

# What each base table tells the lifecycle: the lifecycle columns it fills, and the SELECT that fills them. Used
# twice: by the materialized view that fills the lifecycle on every insert, and once by the migration, to fill it
# from the rows already there. The other columns take their defaults (NULL; no failure).
_LIFECYCLE_SOURCES = {
    "uploads": (
        "received_at, photographer_id, upload_id, stored_at, published_at, bytes_in",
        "SELECT received_at, photographer_id, upload_id, stored_at, published_at, bytes AS bytes_in FROM {db}.uploads",
    ),
    "images": (
        "received_at, photographer_id, upload_id, processing_started_at, processed_at",
        "SELECT received_at, photographer_id, upload_id, processing_started_at, processed_at FROM {db}.images",
    ),
    "ready": (
        "received_at, photographer_id, upload_id, ready_at, bytes_out, variant_count",
        "SELECT received_at, photographer_id, upload_id, ready_at, bytes_out, variant_count FROM {db}.ready",
    ),
    "failures": (
        "received_at, photographer_id, upload_id, failed_at, last_failure",
        "SELECT ifNull(received_at, failed_at) AS received_at, photographer_id, upload_id, failed_at, "
        "argMaxState(tuple(toString(stage), toString(reason)), failed_at) AS last_failure FROM {db}.failures "
        "GROUP BY received_at, photographer_id, upload_id, failed_at",
    ),
}

_LIFECYCLE_VIEWS = tuple(
    f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.upload_lifecycle_from_{table} "
    f"TO {{db}}.upload_lifecycle AS {select}"
    for table, (_, select) in _LIFECYCLE_SOURCES.items()
)
# Run after the views exist, so no row falls between; a row both copy and view write collapses (max).
_LIFECYCLE_BACKFILL = tuple(
    f"INSERT INTO {{db}}.upload_lifecycle ({columns}) {select}" for columns, select in _LIFECYCLE_SOURCES.values()
)

_IMAGE_STAGES_FROM_LIFECYCLE = """
    CREATE OR REPLACE VIEW {db}.image_stages AS
    SELECT
        photographer_id,
        upload_id,
        received_at,
        stored_at,
        published_at,
        processing_started_at,
        processed_at,
        ready_at,
        failed_at,
        if(failed_at IS NULL, NULL, finalizeAggregation(last_failure).1) AS failure_stage,
        if(failed_at IS NULL, NULL, finalizeAggregation(last_failure).2) AS failure_reason,
        multiIf(ready_at IS NOT NULL, 'completed', failed_at IS NOT NULL, 'failed', 'queued') AS status,
        bytes_in,
        bytes_out,
        variant_count,
        dateDiff('millisecond', received_at, published_at) AS gateway_ms,
        dateDiff('millisecond', published_at, processing_started_at) AS queue_ms,
        dateDiff('millisecond', processing_started_at, processed_at) AS processing_ms,
        dateDiff('millisecond', processed_at, ready_at) AS storage_ms,
        dateDiff('millisecond', received_at, ready_at) AS end_to_end_ms
    FROM {db}.upload_lifecycle FINAL
"""

# Uploads neither completed nor failed. Over all history, so it asks the lifecycle without FINAL first which
# rows may be open (both columns NULL: every upload of a merged day that is done drops out, reading two null
# maps), then reads only those keys with FINAL to be sure.
_QUEUED_UPLOADS = """
    CREATE OR REPLACE VIEW {db}.queued_uploads AS
    SELECT photographer_id, upload_id, received_at, stored_at, published_at, processing_started_at, processed_at
    FROM {db}.image_stages
    WHERE status = 'queued'
        AND (received_at, photographer_id, upload_id) IN (
            SELECT received_at, photographer_id, upload_id FROM {db}.upload_lifecycle
            WHERE ready_at IS NULL AND failed_at IS NULL
        )
"""

# Migration 5: deletions. A deletion names one incarnation of an upload (its id and received_at): uploading the
# same content again later gives the same id and a later received_at, and that upload lives on. History is kept;
# the views say what is deleted (see docs/analytics.md, "Deleted images").
_DELETIONS = f"""
    CREATE TABLE IF NOT EXISTS {{db}}.deletions (
        upload_id UUID,
        photographer_id LowCardinality(String),
        sha256 String,
        bucket LowCardinality(String),
        original_key String,
        received_at DateTime64(3, 'UTC'),
        deleted_at DateTime64(3, 'UTC'),
        gateway_id LowCardinality(String),
        version UInt64
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toDate(received_at)
    ORDER BY (photographer_id, upload_id, received_at)
    {_DAILY_MERGE_SETTINGS}
"""

# A new column of an existing table costs no rewrite: old parts read it as its default, NULL (not deleted).
_LIFECYCLE_DELETED_AT = """
    ALTER TABLE {db}.upload_lifecycle
    ADD COLUMN IF NOT EXISTS deleted_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))
"""

# The deletion lands on the lifecycle row of the incarnation it deletes (same received_at, so the same key), and
# nowhere else. The table is new and empty, so there is nothing to backfill.
_LIFECYCLE_FROM_DELETIONS = """
    CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.upload_lifecycle_from_deletions TO {db}.upload_lifecycle
    AS SELECT received_at, photographer_id, upload_id, deleted_at FROM {db}.deletions
"""

# status says how the pipeline's work on the upload ended: an image deleted once ready stays completed (its work
# was done, and the throughput and latency views count it), one deleted before it completed or failed is deleted,
# not queued: nothing more will happen to it. deleted_at says whether it is deleted, whatever its status.
_IMAGE_STAGES_WITH_DELETIONS = """
    CREATE OR REPLACE VIEW {db}.image_stages AS
    SELECT
        photographer_id,
        upload_id,
        received_at,
        stored_at,
        published_at,
        processing_started_at,
        processed_at,
        ready_at,
        failed_at,
        if(failed_at IS NULL, NULL, finalizeAggregation(last_failure).1) AS failure_stage,
        if(failed_at IS NULL, NULL, finalizeAggregation(last_failure).2) AS failure_reason,
        multiIf(
            ready_at IS NOT NULL, 'completed',
            failed_at IS NOT NULL, 'failed',
            deleted_at IS NOT NULL, 'deleted',
            'queued'
        ) AS status,
        bytes_in,
        bytes_out,
        variant_count,
        dateDiff('millisecond', received_at, published_at) AS gateway_ms,
        dateDiff('millisecond', published_at, processing_started_at) AS queue_ms,
        dateDiff('millisecond', processing_started_at, processed_at) AS processing_ms,
        dateDiff('millisecond', processed_at, ready_at) AS storage_ms,
        dateDiff('millisecond', received_at, ready_at) AS end_to_end_ms,
        deleted_at
    FROM {db}.upload_lifecycle FINAL
"""

# The work of every upload received counts, deleted since or not; deleted says how many of them are.
_THROUGHPUT_WITH_DELETIONS = """
    CREATE OR REPLACE VIEW {db}.throughput_per_minute AS
    SELECT
        photographer_id,
        toStartOfMinute(received_at) AS minute,
        count() AS uploads,
        countIf(status = 'completed') AS images,
        countIf(status = 'failed') AS failures,
        sum(ifNull(bytes_in, 0)) AS bytes_in,
        sum(ifNull(bytes_out, 0)) AS bytes_out,
        quantile(0.5)(end_to_end_ms) AS p50_ms,
        quantile(0.95)(end_to_end_ms) AS p95_ms,
        quantile(0.99)(end_to_end_ms) AS p99_ms,
        countIf(deleted_at IS NOT NULL) AS deleted
    FROM {db}.image_stages
    GROUP BY photographer_id, minute
"""

# A deleted upload is not queued any more (its status is deleted). The candidates also leave out rows that carry
# a deletion: once its day is merged, an upload deleted while queued is not read with FINAL on every ask, as it
# would be forever otherwise (it never gets ready_at or failed_at).
_QUEUED_UPLOADS_WITHOUT_DELETED = """
    CREATE OR REPLACE VIEW {db}.queued_uploads AS
    SELECT photographer_id, upload_id, received_at, stored_at, published_at, processing_started_at, processed_at
    FROM {db}.image_stages
    WHERE status = 'queued'
        AND (received_at, photographer_id, upload_id) IN (
            SELECT received_at, photographer_id, upload_id FROM {db}.upload_lifecycle
            WHERE ready_at IS NULL AND failed_at IS NULL AND deleted_at IS NULL
        )
"""

# The rollups change shape (a deleted flag, the deletions' block): dropped and built again, then their views.
# Until its first refresh a new rollup holds no day, so its view reads rows: slower for minutes, never wrong.
_REBUILT_ROLLUPS = tuple(
    statement
    for rollup in MIGRATION_5_ROLLUPS
    for statement in (f"DROP TABLE IF EXISTS {{db}}.{rollup.rollup}", *rollup.statements())
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables: uploads, images, ready, variants, failures", _TABLES),
    # image_stages first: the per-minute views read it.
    Migration(
        2,
        "views: image_stages, throughput_per_minute, stage_latency_per_minute, failures_by_reason, cameras, "
        "duplicates_per_photographer",
        (
            _IMAGE_STAGES,
            _THROUGHPUT_PER_MINUTE,
            _STAGE_LATENCY_PER_MINUTE,
            _FAILURES_BY_REASON,
            _CAMERAS,
            _DUPLICATES_PER_PHOTOGRAPHER,
        ),
    ),
    Migration(
        3,
        "day partitions for every table; upload_lifecycle (one row per upload, filled at insert time); "
        "image_stages reads it; queued_uploads",
        (
            repartition,
            _UPLOAD_LIFECYCLE,
            *_LIFECYCLE_VIEWS,
            *_LIFECYCLE_BACKFILL,
            _IMAGE_STAGES_FROM_LIFECYCLE,
            _QUEUED_UPLOADS,
        ),
    ),
    Migration(
        4,
        "daily rollups, refreshed every 10 minutes, under the all-time views cameras, duplicates_per_photographer, "
        "failures_by_reason and the new capture_hours",
        tuple(statement for rollup in MIGRATION_4_ROLLUPS for statement in rollup.statements()),
    ),
    Migration(
        5,
        "deletions (one row per deleted upload); upload_lifecycle.deleted_at; image_stages: deleted_at, status "
        "deleted; throughput_per_minute: deleted; queued_uploads, cameras, duplicates_per_photographer and "
        "capture_hours leave deleted images out",
        (
            _DELETIONS,
            _LIFECYCLE_DELETED_AT,
            _LIFECYCLE_FROM_DELETIONS,
            _IMAGE_STAGES_WITH_DELETIONS,
            _THROUGHPUT_WITH_DELETIONS,
            _QUEUED_UPLOADS_WITHOUT_DELETED,
            *_REBUILT_ROLLUPS,
        ),
    ),
    Migration(
        6,
        "cameras, duplicates_per_photographer, failures_by_reason and capture_hours read their rollup once per "
        "question (a refresh under a question could leave days out of its answer)",
        tuple(rollup.view_statement() for rollup in ROLLUPS),
    ),
)
"""The schema's history, oldest first. Append new steps; never edit one that has shipped."""

TABLES = ("uploads", "images", "ready", "variants", "failures", "deletions")
"""The tables the sink writes."""

DERIVED_TABLES = ("upload_lifecycle",)
"""Tables filled by materialized views from the sink's tables."""

VIEWS = (
    "image_stages",
    "throughput_per_minute",
    "stage_latency_per_minute",
    "failures_by_reason",
    "cameras",
    "duplicates_per_photographer",
    "queued_uploads",
    "capture_hours",
)
"""The views analysts read."""

ROLLUP_VIEWS = tuple(rollup.rollup for rollup in ROLLUPS)
"""The refreshable materialized views under the all-time views (see ``sinks.clickhouse_rollups``)."""

_SCHEMA_MIGRATIONS = """
    CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
        version UInt32,
        description String,
        applied_at DateTime64(3, 'UTC')
    )
    ENGINE = ReplacingMergeTree
    ORDER BY version
"""


def migrate(client: Client, database: str, *, up_to: int | None = None) -> list[int]:
    """Bring ``database`` up to the newest schema, applying only the migrations not yet recorded.

    Creates the database and its ``schema_migrations`` table if needed. Each migration's statements run in
    order, then the migration is recorded; a second run applies nothing.

    Args:
        client: A clickhouse-connect client (chDB or a server).
        database: Database name, a plain identifier.
        up_to: Stop after this version (tests of an upgrade); the newest by default.

    Returns:
        The versions applied by this call, in order; empty when the schema was already current.

    Raises:
        ValueError: ``database`` is not a plain identifier.
    """
    db = _identifier(database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(_SCHEMA_MIGRATIONS.replace("{db}", db))
    recorded_sql = f"SELECT version FROM {db}.schema_migrations"  # noqa: S608 (db is a checked identifier)
    recorded = {row[0] for row in client.query(recorded_sql).result_rows}
    applied: list[int] = []
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in recorded or (up_to is not None and migration.version > up_to):
            continue
        for step in migration.sql(db):
            if isinstance(step, str):
                client.command(step)
            else:
                step(client, db)
        client.insert(
            f"{db}.schema_migrations",
            [[migration.version, migration.description, datetime.now(UTC)]],
            column_names=["version", "description", "applied_at"],
        )
        applied.append(migration.version)
    return applied


def refresh_rollups(client: Client, database: str) -> None:
    """Refresh every daily rollup now and wait for it, as the schedule does every 10 minutes (tests, benches)."""
    db = _identifier(database)
    for rollup in ROLLUP_VIEWS:
        client.command(f"SYSTEM REFRESH VIEW {db}.{rollup}")
    for rollup in ROLLUP_VIEWS:
        client.command(f"SYSTEM WAIT VIEW {db}.{rollup}")


def _identifier(name: str) -> str:
    # The name is pasted into DDL, so only plain identifiers pass.
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain ClickHouse identifier: {name!r}")
    return name
