"""The ClickHouse schema: tables the sink writes, views analysts read, and the migrations that build them.

Replays collapse by construction. Every table is a ``ReplacingMergeTree(version)`` whose sorting key is
the identity of a fact (an upload, an upload's variant, an upload's failure at one stage) and whose
``version`` is the event's own timestamp in epoch milliseconds: a replayed event lands on the same key with
the same version and collapses into one row, and a later re-processing carries a later timestamp and wins.
Collapsing happens at merge time, so readers use ``FINAL``; the views do, and analysts querying the base
tables should too.

Every table is partitioned by the month of the upload's ``received_at``, which every version of a row shares:
ReplacingMergeTree only collapses rows within one partition, so a partition key taken from a re-processing
timestamp could leave two versions of one image in different months.

The views are plain views, not materialized ones: a materialized view fires once per insert and would count a
replayed event twice, while a plain view reads the collapsed tables at query time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Migration:
    """One step of the schema, applied once per database and recorded in ``schema_migrations``.

    Attributes:
        version: Position in the history; applied in increasing order.
        description: What the step does, stored with its record.
        statements: DDL templates with ``{db}`` for the database name; each must be idempotent on its own
            (``IF NOT EXISTS``, ``CREATE OR REPLACE``) so a crash between a statement and the record is harmless.
    """

    version: int
    description: str
    statements: tuple[str, ...]

    def sql(self, database: str) -> list[str]:
        """Return the statements with ``{db}`` replaced by ``database``.

        Args:
            database: A plain identifier (letters, digits, underscores).

        Returns:
            The DDL statements, in order.
        """
        # str.replace, not str.format: DDL may one day contain braces of its own (maps, settings).
        return [statement.replace("{db}", _identifier(database)) for statement in self.statements]


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
)
"""The schema's history, oldest first. Append new steps; never edit one that has shipped."""

TABLES = ("uploads", "images", "ready", "variants", "failures")
"""The tables the sink writes."""

VIEWS = (
    "image_stages",
    "throughput_per_minute",
    "stage_latency_per_minute",
    "failures_by_reason",
    "cameras",
    "duplicates_per_photographer",
)
"""The views analysts read."""

_SCHEMA_MIGRATIONS = """
    CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
        version UInt32,
        description String,
        applied_at DateTime64(3, 'UTC')
    )
    ENGINE = ReplacingMergeTree
    ORDER BY version
"""


def migrate(client: Client, database: str) -> list[int]:
    """Bring ``database`` up to the newest schema, applying only the migrations not yet recorded.

    Creates the database and its ``schema_migrations`` table if needed. Each migration's statements run in
    order, then the migration is recorded; a second run applies nothing.

    Args:
        client: A clickhouse-connect client (chDB or a server).
        database: Database name, a plain identifier.

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
        if migration.version in recorded:
            continue
        for statement in migration.sql(db):
            client.command(statement)
        client.insert(
            f"{db}.schema_migrations",
            [[migration.version, migration.description, datetime.now(UTC)]],
            column_names=["version", "description", "applied_at"],
        )
        applied.append(migration.version)
    return applied


def _identifier(name: str) -> str:
    # The name is pasted into DDL, so only plain identifiers pass.
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain ClickHouse identifier: {name!r}")
    return name
