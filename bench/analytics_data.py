"""The analytics benchmark's data: weeks of history made inside ClickHouse, the last minutes as the sink writes them.

The history is one ``INSERT ... SELECT FROM numbers(n)`` per base table, so a month takes seconds and no row
passes through Python. Every column of an upload is a function of its row number (hashes, never ``rand()``), so
the rows of one upload in every table share ``upload_id``, ``photographer_id`` and ``received_at`` exactly, and a
rerun makes the same data. Only the base tables are written: whatever the schema derives from them (views,
materialized views, rollups) fills itself as it would in production.

What each upload becomes is decided by a permutation of the row numbers (``n * multiplier mod n_rows``), so the
counts are exact by construction (``HistoryPlan.counts``) while the failures still fall anywhere in the month.
A handful of uploads in the last hours stay queued: picked in Python, listed in the SQL.

The last minutes are made in Python as the pipeline would: event records mapped by ``sinks.rows.rows_for``
and inserted through the sink's writer in batches of 50 events, one batch inserted twice (a replay).
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.analytics_adapter import TABLE_COLUMNS, Writer, rows_for
from schemas.events import (
    Event,
    FailureReason,
    ImageMetadata,
    ImageProcessed,
    ImageReady,
    ProcessingFailed,
    Stage,
    StoredVariant,
    UploadReceived,
)

SEED = "photostream-bench"
TAIL = timedelta(minutes=10)
"""The last stretch of history, inserted event by event as the sink does."""
BATCH_EVENTS = 50
FAILURE_RATE = 0.005
# Of the failed uploads: given up in processing, given up in the S3 sink after processing, failed once in
# processing and then completed by a retry (the failure row stays).
FAILURE_SPLIT = (0.80, 0.08, 0.12)
QUEUED_WAITING = 4
"""Uploads never picked up by a worker (no image row), spread over the last hours of history."""
QUEUED_STORING = 3
"""Uploads processed whose variants never became durable (no ready row)."""
DAILY_SWING = 0.6
"""The daily cycle: uploads per minute run from 1 - s to 1 + s times the mean, lowest at 00:00 UTC, highest at 12:00."""
SESSION = 8
"""Consecutive uploads from one photographer (a shoot being sent); duplicates come from within it."""

# 15 photographers; the first sends 30 %, the rest in a long tail.
PHOTOGRAPHERS = (
    "ph-newsroom", "ph-weddings-lisbon", "ph-amara", "ph-jonas", "ph-keiko", "ph-mateo", "ph-studio-north",
    "ph-ines", "ph-oskar", "ph-priya", "ph-liam", "ph-sofia", "ph-tomas", "ph-yuki", "ph-zara",
)  # fmt: skip
SHARES = (30.0, 12.0, 9.0, 7.5, 6.5, 5.5, 5.0, 4.5, 4.0, 3.5, 3.5, 3.0, 2.5, 2.0, 1.5)
UTC_OFFSETS = (
    "+00:00", "+01:00", None, "+02:00", "+09:00", "-03:00", "+01:00", "+01:00", "+02:00", "+05:30",
    None, "+01:00", "-05:00", "+09:00", "+01:00",
)  # fmt: skip
# Photographers who opted in to GPS, with a home base.
GPS = {1: (38.72, -9.14), 4: (35.68, 139.69), 9: (19.08, 72.88), 13: (34.69, 135.50)}


@dataclass(frozen=True)
class Camera:
    """A body and lens as EXIF names them, with the sensor's pixels."""

    make: str
    model: str
    lens: str | None
    width: int
    height: int
    share: float


CAMERAS = (
    Camera("SONY", "ILCE-7M4", "FE 24-70mm F2.8 GM II", 7008, 4672, 16),
    Camera("Canon", "Canon EOS R6m2", "RF24-105mm F4 L IS USM", 6000, 4000, 13),
    Camera("Apple", "iPhone 15 Pro", "iPhone 15 Pro back triple camera 6.765mm f/1.78", 4032, 3024, 12),
    Camera("NIKON CORPORATION", "NIKON Z 6_2", "NIKKOR Z 24-70mm f/4 S", 6048, 4024, 10),
    Camera("FUJIFILM", "X-T5", "XF16-55mmF2.8 R LM WR", 7728, 5152, 9),
    Camera("Canon", "Canon EOS R5", "RF70-200mm F2.8 L IS USM", 8192, 5464, 8),
    Camera("SONY", "ILCE-7M4", "FE 35mm F1.4 GM", 7008, 4672, 7),
    Camera("FUJIFILM", "X100VI", None, 7728, 5152, 6),
    Camera("Apple", "iPhone 14", "iPhone 14 back dual wide camera 5.7mm f/1.5", 4032, 3024, 5),
    Camera("OM Digital Solutions", "OM-1", "M.12-40mm F2.8 PRO II", 5184, 3888, 4),
    Camera("Panasonic", "DC-S5M2", "LUMIX S 24-105/F4", 6000, 4000, 3),
    Camera("samsung", "SM-S918B", None, 4000, 3000, 3),
    Camera("SONY", "ILCE-6700", "E 18-135mm F3.5-5.6 OSS", 6192, 4128, 2),
    Camera("NIKON CORPORATION", "NIKON Z f", "NIKKOR Z 40mm f/2 (SE)", 6048, 4024, 2),
)
PRIMARY_CAMERA = (0, 4, 2, 1, 3, 0, 5, 6, 1, 8, 9, 10, 3, 7, 11)
"""Index into CAMERAS of each photographer's usual body; 65 % of their photos, the rest from CAMERAS' shares."""
NO_EXIF_PERCENT = 8
# Shots per hour of the camera's clock: little at night, peaks at morning and golden hour.
HOURS = (1, 0.6, 0.4, 0.3, 0.4, 1, 2.5, 4, 5, 5.5, 6, 6.5, 6.5, 6, 5.5, 5.5, 6, 7, 8, 7, 5, 3.5, 2.5, 1.5)
ISO = (100, 200, 400, 800, 1600, 3200, 6400)
EXPOSURE = (1 / 2000, 1 / 1000, 1 / 500, 1 / 250, 1 / 125, 1 / 60, 1 / 30)
F_NUMBER = (1.4, 1.8, 2.8, 4.0, 5.6, 8.0, 11.0)
# name, format, long edge (square: the side), typical bytes
VARIANTS = (
    ("web", "webp", 1920, 310_000),
    ("web", "jpeg", 1920, 480_000),
    ("thumb", "webp", 300, 9_000),
    ("thumb", "jpeg", 300, 14_000),
    ("square", "webp", 150, 5_000),
)
CONTENT_TYPES = {"webp": "image/webp", "jpeg": "image/jpeg"}
EXTENSIONS = {"webp": "webp", "jpeg": "jpg"}
# reason, share of the uploads given up in processing, detail
PROCESSING_FAILURES = (
    (FailureReason.CORRUPT, 35, "cannot decode: premature end of JPEG data"),
    (FailureReason.UNSUPPORTED, 25, "unsupported format: image/x-canon-cr3"),
    (FailureReason.INTERNAL, 20, "worker timed out after 30 s"),
    (FailureReason.TOO_MANY_PIXELS, 10, "image has 214.5 MP, the limit is 200 MP"),
    (FailureReason.MISSING_ORIGINAL, 10, "original not found in S3"),
)
RETRIED_DETAIL = "original not visible in S3 yet"
S3_SINK_DETAIL = "PutObject failed after 5 attempts: SlowDown"


@dataclass(frozen=True)
class Counts:
    """Rows per base table, and uploads per status, as an analyst should see them after deduplication."""

    uploads: int = 0
    images: int = 0
    ready: int = 0
    variants: int = 0
    failures: int = 0
    completed: int = 0
    failed: int = 0
    queued: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        """The counts in field order."""
        return (
            self.uploads, self.images, self.ready, self.variants, self.failures, self.completed, self.failed,
            self.queued,
        )  # fmt: skip

    def as_dict(self) -> dict[str, int]:
        """Field name to count."""
        return dict(zip(self.__dataclass_fields__, self.as_tuple(), strict=True))


@dataclass(frozen=True)
class Scale:
    """How much history: ``days`` of ``photos_per_day`` uploads, the last ``TAIL`` of them made as events."""

    days: int
    photos_per_day: int

    @property
    def uploads(self) -> int:
        """Every upload of the period."""
        return self.days * self.photos_per_day

    @property
    def tail_uploads(self) -> int:
        """Uploads of the last ten minutes at the mean rate."""
        return round(self.photos_per_day * TAIL / timedelta(days=1))

    @property
    def history_uploads(self) -> int:
        """Uploads made inside ClickHouse."""
        return self.uploads - self.tail_uploads


@dataclass(frozen=True)
class HistoryPlan:
    """Everything the history's SQL needs, and the counts it will produce."""

    rows: int
    start: datetime
    end: datetime
    multiplier: int
    failed_processing: int
    failed_storage: int
    retried: int
    queued_waiting: tuple[int, ...]
    queued_storing: tuple[int, ...]

    @classmethod
    def make(cls, scale: Scale, end: datetime) -> HistoryPlan:
        """Plan ``scale.history_uploads`` uploads from ``scale.days`` before ``end + TAIL`` up to ``end``."""
        rows = scale.history_uploads
        failures = round(rows * FAILURE_RATE)
        failed_processing = round(failures * FAILURE_SPLIT[0])
        failed_storage = round(failures * FAILURE_SPLIT[1])
        retried = failures - failed_processing - failed_storage
        multiplier = 2_654_435_761  # a prime: coprime with rows unless rows is a multiple of it
        while math.gcd(multiplier, rows) != 1:
            multiplier += 2
        # Queued uploads every half hour before the end, each moved to the nearest row that is not a failure.
        step = max(1, scale.photos_per_day // 48)
        queued: list[int] = []
        for k in range(QUEUED_WAITING + QUEUED_STORING):
            n = rows - 1 - k * step
            while n * multiplier % rows < failures or n in queued:
                n -= 1
            queued.append(n)
        return cls(
            rows=rows,
            start=end + TAIL - timedelta(days=scale.days),
            end=end,
            multiplier=multiplier,
            failed_processing=failed_processing,
            failed_storage=failed_storage,
            retried=retried,
            queued_waiting=tuple(queued[:QUEUED_WAITING]),
            queued_storing=tuple(queued[QUEUED_WAITING:]),
        )

    def counts(self) -> Counts:
        """Rows per table and uploads per status the history's statements make."""
        waiting, storing = len(self.queued_waiting), len(self.queued_storing)
        ready = self.rows - self.failed_processing - self.failed_storage - waiting - storing
        return Counts(
            uploads=self.rows,
            images=self.rows - self.failed_processing - waiting,
            ready=ready,
            variants=ready * len(VARIANTS),
            failures=self.failed_processing + self.failed_storage + self.retried,
            completed=ready,
            failed=self.failed_processing + self.failed_storage,
            queued=waiting + storing,
        )

    def statements(self, database: str) -> dict[str, str]:
        """One ``INSERT ... SELECT`` per base table the history fills (no upload of it was deleted)."""
        outcome = {
            "uploads": "1",
            "images": "outcome NOT IN ('failed', 'waiting')",
            "ready": "outcome IN ('completed', 'retried')",
            "variants": "outcome IN ('completed', 'retried')",
            "failures": "outcome IN ('failed', 'storage_failed', 'retried')",
        }
        values = self._values()
        return {
            table: _render(
                f"INSERT INTO {database}.{table} ({', '.join(TABLE_COLUMNS[table])})\n"
                f"SELECT {', '.join(_SELECTS[table])}\nFROM ({_BASE})\n"
                + ("ARRAY JOIN variant_index AS i\n" if table == "variants" else "")
                + f"WHERE {outcome[table]}",
                values,
            )
            for table in outcome
        }

    def _values(self) -> dict[str, str]:
        day_ms = 86_400_000
        span = (self.end - self.start) / timedelta(days=1)
        phase = (self.start - self.start.replace(hour=0, minute=0, second=0, microsecond=0)) / timedelta(days=1)
        return {
            "SEED": _literal(SEED),
            "ROWS": str(self.rows),
            "WARPED_SPAN": repr(_warp(span, phase)),
            "PHASE": repr(phase),
            "SIN_PHASE": repr(math.sin(2 * math.pi * phase)),
            "SWING": repr(DAILY_SWING),
            "START": f"toDateTime64({_literal(self.start.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3])}, 3, 'UTC')",
            "DAY_MS": str(day_ms),
            "MULTIPLIER": str(self.multiplier),
            "FAILED_PROCESSING": str(self.failed_processing),
            "FAILED_STORAGE": str(self.failed_processing + self.failed_storage),
            "RETRIED": str(self.failed_processing + self.failed_storage + self.retried),
            "QUEUED_WAITING": _literal(list(self.queued_waiting)),
            "QUEUED_STORING": _literal(list(self.queued_storing)),
            "SESSION": str(SESSION),
            "PHOTOGRAPHERS": _literal(list(PHOTOGRAPHERS)),
            "PHOTOGRAPHER_UPTO": _literal(_thresholds(SHARES)),
            "OFFSETS": _literal(list(UTC_OFFSETS)) + "::Array(Nullable(String))",
            "OFFSET_SECONDS": _literal([_offset_seconds(offset) for offset in UTC_OFFSETS]),
            "GPS_LAT": _literal([GPS.get(p, (0.0, 0.0))[0] for p in range(len(PHOTOGRAPHERS))]),
            "GPS_LON": _literal([GPS.get(p, (0.0, 0.0))[1] for p in range(len(PHOTOGRAPHERS))]),
            "GPS_ON": _literal([int(p in GPS) for p in range(len(PHOTOGRAPHERS))]),
            "PRIMARY": _literal([i + 1 for i in PRIMARY_CAMERA]),
            "CAMERA_UPTO": _literal(_thresholds([c.share for c in CAMERAS])),
            "MAKES": _literal([c.make for c in CAMERAS]),
            "MODELS": _literal([c.model for c in CAMERAS]),
            "LENSES": _literal([c.lens for c in CAMERAS]) + "::Array(Nullable(String))",
            "WIDTHS": _literal([c.width for c in CAMERAS]),
            "HEIGHTS": _literal([c.height for c in CAMERAS]),
            "NO_EXIF": str(NO_EXIF_PERCENT),
            "HOUR_UPTO": _literal(_thresholds(HOURS)),
            "ISO": _literal(list(ISO)),
            "EXPOSURE": _literal(list(EXPOSURE)),
            "F_NUMBER": _literal(list(F_NUMBER)),
            "REASONS": _literal([str(reason) for reason, _, _ in PROCESSING_FAILURES]),
            "REASON_UPTO": _literal(_thresholds([share for _, share, _ in PROCESSING_FAILURES])),
            "DETAILS": _literal([detail for _, _, detail in PROCESSING_FAILURES]),
            "RETRIED_DETAIL": _literal(RETRIED_DETAIL),
            "S3_SINK_DETAIL": _literal(S3_SINK_DETAIL),
            "VARIANT_NAMES": _literal([name for name, _, _, _ in VARIANTS]),
            "VARIANT_FORMATS": _literal([fmt for _, fmt, _, _ in VARIANTS]),
            "VARIANT_TYPES": _literal([CONTENT_TYPES[fmt] for _, fmt, _, _ in VARIANTS]),
            "VARIANT_EXTENSIONS": _literal([EXTENSIONS[fmt] for _, fmt, _, _ in VARIANTS]),
            "VARIANT_EDGES": _literal([edge for _, _, edge, _ in VARIANTS]),
            "VARIANT_BYTES": _literal([size for _, _, _, size in VARIANTS]),
            "DISTINCT_VARIANT_NAMES": _literal(list(dict.fromkeys(name for name, _, _, _ in VARIANTS))),
        }


def _render(sql: str, values: dict[str, str]) -> str:
    """Fill ``${NAME}`` placeholders, then expand ``u('tag')``: a uniform number in [0, 1) per row and tag."""
    sql = _UNIFORM.sub(r"(cityHash64(${SEED}, '\1', n) % 1000000 / 1000000)", sql)
    for name, value in values.items():
        sql = sql.replace("${" + name + "}", value)
    if "${" in sql:
        raise ValueError(f"unfilled placeholder in the history's SQL: {sql[sql.index('${') :][:40]}")
    return sql


_UNIFORM = re.compile(r"\bu\('([a-z_]+)'\)")


# One row per upload with every column any table takes. A column of the outer SELECTs that a table does not use
# is pruned from its plan, so the hashes of the variants cost only the variants' insert.
# u('tag') is a uniform number in [0, 1) from the row number and the tag, so columns vary independently.
_BASE = """
SELECT
    number AS n,
    arrayFirstIndex(x -> (cityHash64(${SEED}, 'photographer', intDiv(n, ${SESSION})) % 1000000) < x,
        ${PHOTOGRAPHER_UPTO}) AS p,
    ${PHOTOGRAPHERS}[p] AS photographer_id,
    reinterpretAsUUID(MD5(concat(${SEED}, '/upload/', toString(n)))) AS upload_id,
    -- time in days from the start: n spread evenly, then moved so the rate follows the UTC clock, i.e. solve
    -- F(x) = y for F(x) = x - s/2pi (sin 2pi(x + phase) - sin 2pi phase), whose slope 1 - s cos 2pi(x + phase)
    -- is the rate (peak at 12:00 UTC); four Newton steps from x = y.
    n / ${ROWS} * ${WARPED_SPAN} AS y,
    y - (y - ${SWING} / (2 * pi()) * (sin(2 * pi() * (y + ${PHASE})) - ${SIN_PHASE}) - y)
        / (1 - ${SWING} * cos(2 * pi() * (y + ${PHASE}))) AS x1,
    x1 - (x1 - ${SWING} / (2 * pi()) * (sin(2 * pi() * (x1 + ${PHASE})) - ${SIN_PHASE}) - y)
        / (1 - ${SWING} * cos(2 * pi() * (x1 + ${PHASE}))) AS x2,
    x2 - (x2 - ${SWING} / (2 * pi()) * (sin(2 * pi() * (x2 + ${PHASE})) - ${SIN_PHASE}) - y)
        / (1 - ${SWING} * cos(2 * pi() * (x2 + ${PHASE}))) AS x3,
    x3 - (x3 - ${SWING} / (2 * pi()) * (sin(2 * pi() * (x3 + ${PHASE})) - ${SIN_PHASE}) - y)
        / (1 - ${SWING} * cos(2 * pi() * (x3 + ${PHASE}))) AS t,
    1 - ${SWING} * cos(2 * pi() * (t + ${PHASE})) AS load,
    addMilliseconds(${START}, toInt64(t * ${DAY_MS})) AS received_at,
    (n * ${MULTIPLIER}) % ${ROWS} AS r,
    multiIf(
        has(${QUEUED_WAITING}, n), 'waiting',
        has(${QUEUED_STORING}, n), 'storing',
        r < ${FAILED_PROCESSING}, 'failed',
        r < ${FAILED_STORAGE}, 'storage_failed',
        r < ${RETRIED}, 'retried',
        'completed') AS outcome,
    -- camera
    u('exif') * 100 < ${NO_EXIF} AS no_exif,
    if(u('usual') < 0.65, ${PRIMARY}[p],
        arrayFirstIndex(x -> (cityHash64(${SEED}, 'camera', n) % 1000000) < x, ${CAMERA_UPTO})) AS c,
    if(no_exif, NULL, ${MAKES}[c]) AS camera_make,
    if(no_exif, NULL, ${MODELS}[c]) AS camera_model,
    if(no_exif, NULL, ${LENSES}[c]) AS lens,
    if(no_exif, 4000, ${WIDTHS}[c]) AS sensor_w,
    if(no_exif, 3000, ${HEIGHTS}[c]) AS sensor_h,
    u('portrait') < 0.15 AS portrait,
    toInt32(if(portrait, sensor_h, sensor_w)) AS width,
    toInt32(if(portrait, sensor_w, sensor_h)) AS height,
    round(sensor_w * sensor_h / 1e6, 1) AS megapixels,
    camera_make = 'Apple' AS heic,
    if(heic, 'heif', 'jpeg') AS format,
    toUInt64(sensor_w * sensor_h * if(heic, 0.18, 0.3) * (0.7 + 0.6 * u('bytes'))) AS bytes,
    -- duplicates: within a shoot, so the original is the same photographer's
    n % ${SESSION} AS shot,
    multiIf(shot = 0, NULL, u('duplicate') < 0.014, 'exact', u('duplicate') < 0.026, 'near', NULL) AS duplicate_kind,
    n - 1 - cityHash64(${SEED}, 'original', n) % greatest(shot, 1) AS original,
    lower(hex(SHA256(concat(${SEED}, '/original/', toString(if(duplicate_kind = 'exact', original, n)))))) AS sha256,
    leftPad(lower(hex(bitXor(cityHash64(${SEED}, 'phash', if(duplicate_kind IS NULL, n, original)),
        if(duplicate_kind = 'near', bitShiftLeft(toUInt64(1), cityHash64(${SEED}, 'bit', n) % 64), 0)))), 16, '0')
        AS phash,
    if(duplicate_kind IS NULL, NULL, reinterpretAsUUID(MD5(concat(${SEED}, '/upload/', toString(original)))))
        AS duplicate_of,
    -- capture time on the camera's clock, days before the upload, by hour of day
    arrayFirstIndex(x -> (cityHash64(${SEED}, 'hour', n) % 1000000) < x, ${HOUR_UPTO}) - 1 AS hour,
    toDateTime(toDate(received_at) - toIntervalDay(2 + cityHash64(${SEED}, 'lag', n) % 4), 'UTC')
        + toIntervalSecond(hour * 3600 + cityHash64(${SEED}, 'second', n) % 3600) AS captured_clock,
    if(no_exif, NULL, captured_clock) AS captured_at_local,
    if(no_exif, NULL, formatDateTime(captured_clock, '%Y-%m-%dT%H:%i:%S', 'UTC')) AS captured_at,
    if(no_exif, NULL, ${OFFSETS}[p]) AS captured_at_utc_offset,
    if(captured_at_utc_offset IS NULL, NULL, captured_clock - toIntervalSecond(${OFFSET_SECONDS}[p]))
        AS captured_at_utc,
    -- stage latencies (ms): the queue grows with the daily load and has a tail
    50 + cityHash64(${SEED}, 'gateway', n) % 251 AS gateway_ms,
    toUInt32(100 * pow(50, u('queue')) * (0.5 + 0.5 * load) * if(u('backlog') < 0.01, 3 + 10 * u('spike'), 1))
        AS queue_ms,
    toUInt32(least(3000, 500 + megapixels * 35 + cityHash64(${SEED}, 'processing', n) % 800)) AS processing_ms,
    toUInt32(200 + 1800 * pow(u('storage'), 2.5)) AS storage_ms,
    addMilliseconds(received_at, intDiv(gateway_ms * 4, 5)) AS stored_at,
    addMilliseconds(received_at, gateway_ms) AS published_at,
    addMilliseconds(published_at, queue_ms + 50 + cityHash64(${SEED}, 'fail', n) % 400) AS first_failed_at,
    if(outcome = 'retried', addMilliseconds(first_failed_at, 5000 + cityHash64(${SEED}, 'backoff', n) % 25000),
        addMilliseconds(published_at, queue_ms)) AS processing_started_at,
    addMilliseconds(processing_started_at, processing_ms) AS processed_at,
    addMilliseconds(processed_at, storage_ms) AS ready_at,
    multiIf(outcome = 'storage_failed', addMilliseconds(processed_at, 30000 + storage_ms), first_failed_at)
        AS failed_at,
    -- variants
    [1, 2, 3, 4, 5] AS variant_index,
    arrayMap(k -> toUInt64(${VARIANT_BYTES}[k] * (0.7 + 0.6 * (cityHash64(${SEED}, 'variant', n, k) % 1000) / 1000)),
        variant_index) AS variant_bytes,
    greatest(width, height) AS long_edge
FROM numbers(${ROWS})
"""

_SELECTS: dict[str, tuple[str, ...]] = {
    "uploads": (
        "upload_id",
        "photographer_id",
        "if(heic, concat('IMG_', toString(1000 + n % 9000), '.HEIC'), concat('DSC', leftPad(toString(n % 100000), 5, "
        "'0'), '.JPG'))",
        "if(heic, 'image/heic', 'image/jpeg')",
        "bytes",
        "sha256",
        "'photostream'",
        "concat('originals/', photographer_id, '/', formatDateTime(received_at, '%Y/%m/%d', 'UTC'), '/', "
        "toString(upload_id))",
        "if(u('title') < 0.2, concat('Shoot ', toString(intDiv(n, ${SESSION}) % 1000)), NULL)",
        "if(u('tags') < 0.3, ['client', photographer_id], [])",
        "received_at",
        "stored_at",
        "published_at",
        "concat('gw-', toString(1 + n % 2))",
        "toUInt64(toUnixTimestamp64Milli(published_at))",
    ),
    "images": (
        "upload_id",
        "photographer_id",
        "sha256",
        "phash",
        "substring(base64Encode(MD5(concat(${SEED}, '/placeholder/', toString(n)))), 1, 20)",
        "duplicate_of",
        "duplicate_kind",
        "${DISTINCT_VARIANT_NAMES}",
        "width",
        "height",
        "format",
        "3",
        "false",
        "toInt64(bytes)",
        "megapixels",
        "multiIf(heic, 'Display P3', u('icc') < 0.1, 'Adobe RGB (1998)', 'sRGB IEC61966-2.1')",
        "camera_make",
        "camera_model",
        "lens",
        "if(no_exif, NULL, toInt32(${ISO}[1 + cityHash64(${SEED}, 'iso', n) % 7]))",
        "if(no_exif, NULL, ${EXPOSURE}[1 + cityHash64(${SEED}, 'exposure', n) % 7])",
        "if(no_exif, NULL, ${F_NUMBER}[1 + cityHash64(${SEED}, 'aperture', n) % 7])",
        "if(no_exif, NULL, toFloat64(24 + cityHash64(${SEED}, 'focal', n) % 176))",
        "if(no_exif, NULL, toInt32(24 + cityHash64(${SEED}, 'focal', n) % 176))",
        "captured_at",
        "captured_at_utc_offset",
        "if(no_exif, NULL, toInt32(if(portrait, 6, 1)))",
        "if(no_exif, NULL, ['Ver.1.10', 'Ver.2.00', 'Adobe Lightroom Classic 13.2', 'Capture One 16.3'][1 + n % 4])",
        "if(${GPS_ON}[p] = 1 AND NOT no_exif, ${GPS_LAT}[p] + u('lat') / 5 - 0.1, NULL)",
        "if(${GPS_ON}[p] = 1 AND NOT no_exif, ${GPS_LON}[p] + u('lon') / 5 - 0.1, NULL)",
        "if(${GPS_ON}[p] = 1 AND NOT no_exif, 5 + 200 * u('alt'), NULL)",
        "captured_at_local",
        "captured_at_utc",
        "received_at",
        "processing_started_at",
        "processed_at",
        "toUInt32(processing_ms * 0.3)",
        "toUInt32(2 + processing_ms % 9)",
        "toUInt32(processing_ms * 0.08)",
        "toUInt32(processing_ms - toUInt32(processing_ms * 0.3) - 2 - processing_ms % 9 "
        "- toUInt32(processing_ms * 0.08))",
        "toUInt64(toUnixTimestamp64Milli(processed_at))",
    ),
    "ready": (
        "upload_id",
        "photographer_id",
        "toString(reinterpretAsUUID(MD5(concat(${SEED}, '/ready/', toString(n)))))",
        "toUInt16(length(variant_bytes))",
        "arraySum(variant_bytes)",
        "received_at",
        "ready_at",
        "toUInt64(toUnixTimestamp64Milli(ready_at))",
    ),
    "variants": (
        "upload_id",
        "photographer_id",
        "${VARIANT_NAMES}[i]",
        "${VARIANT_FORMATS}[i]",
        "${VARIANT_TYPES}[i]",
        "toUInt32(if(i = 5, 150, round(width * ${VARIANT_EDGES}[i] / long_edge)))",
        "toUInt32(if(i = 5, 150, round(height * ${VARIANT_EDGES}[i] / long_edge)))",
        "variant_bytes[i]",
        "concat('derivatives/', photographer_id, '/', formatDateTime(received_at, '%Y/%m/%d', 'UTC'), '/', "
        "toString(upload_id), '/', ${VARIANT_NAMES}[i], '.', ${VARIANT_EXTENSIONS}[i])",
        "lower(hex(SHA256(concat(${SEED}, '/variant/', toString(n), '/', toString(i)))))",
        "received_at",
        "ready_at",
        "toUInt64(toUnixTimestamp64Milli(ready_at))",
    ),
    "failures": (
        "upload_id",
        "photographer_id",
        "multiIf(outcome = 'storage_failed', 's3-sink', 'processing')",
        "multiIf(outcome = 'storage_failed', 'internal', outcome = 'retried', 'missing_original', "
        "${REASONS}[arrayFirstIndex(x -> (cityHash64(${SEED}, 'reason', n) % 1000000) < x, ${REASON_UPTO})])",
        "multiIf(outcome = 'storage_failed', ${S3_SINK_DETAIL}, outcome = 'retried', ${RETRIED_DETAIL}, "
        "${DETAILS}[arrayFirstIndex(x -> (cityHash64(${SEED}, 'reason', n) % 1000000) < x, ${REASON_UPTO})])",
        "if(outcome = 'storage_failed', 'photo-variants', 'photo-uploads')",
        "toInt32(n % 12)",
        "toInt64(intDiv(n, 12))",
        "received_at",
        "failed_at",
        "toUInt16(if(outcome = 'storage_failed', 5, 1))",
        "toUInt64(toUnixTimestamp64Milli(failed_at))",
    ),
}


def _warp(t: float, phase: float) -> float:
    return t - DAILY_SWING / (2 * math.pi) * (math.sin(2 * math.pi * (t + phase)) - math.sin(2 * math.pi * phase))


def _thresholds(shares: Sequence[float]) -> list[int]:
    """Cumulative shares scaled to 1,000,000, the last exactly 1,000,000 so every draw lands somewhere."""
    total, running, out = sum(shares), 0.0, []
    for share in shares:
        running += share
        out.append(round(running / total * 1_000_000))
    out[-1] = 1_000_000
    return out


def _offset_seconds(offset: str | None) -> int:
    if offset is None:
        return 0
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    return sign * (int(hours) * 3600 + int(minutes) * 60)


def _literal(value: Any) -> str:
    """A ClickHouse literal of one of this module's own constants (strings, numbers, None, lists of them)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, bool | int | float):
        return repr(value)
    raise TypeError(f"no literal for {value!r}")


def generate_history(client: Any, database: str, plan: HistoryPlan) -> dict[str, float]:
    """Run the history's statements on ``client`` (a clickhouse-connect client), then merge every table.

    Every MergeTree table of the database is merged, the ones the schema derives too: weeks into a service,
    its old parts are merged, and a query on fresh unmerged parts would measure the generator, not the schema.

    Returns:
        Seconds per table insert, and for the final merge.
    """
    seconds: dict[str, float] = {}
    for table, sql in plan.statements(database).items():
        began = time.perf_counter()
        client.command(sql)
        seconds[table] = time.perf_counter() - began
    began = time.perf_counter()
    merged = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree%' ORDER BY name",
        parameters={"db": database},
    ).result_rows
    for (table,) in merged:
        client.command(f"OPTIMIZE TABLE {database}.`{table}` FINAL")
    seconds["optimize"] = time.perf_counter() - began
    return seconds


# ---------------------------------------------------------------------------------------------------------------
# The tail: the last minutes as events, through the sink's mapping and insert


@dataclass
class Tail:
    """The last minutes' events in the order the sink receives them, and the counts they add."""

    events: list[Event] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)


def tail_events(scale: Scale, start: datetime, end: datetime, *, label: str = "tail") -> Tail:
    """``scale.tail_uploads`` uploads received evenly from ``start`` to ``end``, as events up to ``end``.

    One upload in 200 fails in processing; the rest complete, except those still in flight at ``end`` (their
    later events are not sent yet), which read as queued.
    """
    return uploads_as_events(scale.tail_uploads, start, end, label=label)


def uploads_as_events(
    count: int, start: datetime, end: datetime, *, label: str, cutoff: datetime | None = None
) -> Tail:
    """``count`` uploads received evenly between ``start`` and ``end``, as events up to ``cutoff`` (default ``end``).

    Events later than the cutoff are not sent yet: their uploads read as queued.
    """
    cutoff = cutoff or end
    rng = random.Random(f"{SEED}/{label}")  # noqa: S311 (made-up data, repeatable on purpose)
    timed: list[tuple[datetime, int, Event]] = []
    uploads = images = ready = failures = completed = failed = 0
    span = end - start
    for k in range(count):
        received = start + span * (k + 0.5) / count
        received = received.replace(microsecond=received.microsecond // 1000 * 1000)  # Avro keeps milliseconds
        kept = [(moment, event) for moment, event in _one_upload(rng, label, k, received) if moment <= cutoff]
        for moment, event in kept:
            timed.append((moment, k, event))
        kinds = [type(event) for _, event in kept]
        uploads += UploadReceived in kinds
        images += ImageProcessed in kinds
        ready += ImageReady in kinds
        failures += ProcessingFailed in kinds
        completed += ImageReady in kinds
        failed += ProcessingFailed in kinds and ImageReady not in kinds
    timed.sort(key=lambda item: (item[0], item[1]))
    counts = Counts(
        uploads=uploads,
        images=images,
        ready=ready,
        variants=ready * len(VARIANTS),
        failures=failures,
        completed=completed,
        failed=failed,
        queued=uploads - completed - failed,
    )
    return Tail(events=[event for _, _, event in timed], counts=counts)


def _one_upload(rng: random.Random, label: str, k: int, received: datetime) -> list[tuple[datetime, Event]]:
    """One upload's events, each with the moment the sink would see it."""
    photographer_index = rng.choices(range(len(PHOTOGRAPHERS)), weights=SHARES)[0]
    photographer = PHOTOGRAPHERS[photographer_index]
    upload_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{SEED}/{label}/{k}")
    camera = CAMERAS[PRIMARY_CAMERA[photographer_index]] if rng.random() < 0.65 else rng.choices(
        CAMERAS, weights=[c.share for c in CAMERAS]
    )[0]  # fmt: skip
    no_exif = rng.random() * 100 < NO_EXIF_PERCENT
    width, height = (4000, 3000) if no_exif else (camera.width, camera.height)
    heic = not no_exif and camera.make == "Apple"
    size = int(width * height * (0.18 if heic else 0.3) * (0.7 + 0.6 * rng.random()))
    ms = timedelta(milliseconds=1)
    published = received + rng.randint(50, 300) * ms
    started = published + int(100 * 50 ** rng.random()) * ms
    megapixels = round(width * height / 1e6, 1)
    processed = started + int(min(3000, 500 + megapixels * 35 + rng.randint(0, 799))) * ms
    ready_at = processed + int(200 + 1800 * rng.random() ** 2.5) * ms
    sha = uuid.uuid5(uuid.NAMESPACE_URL, f"{SEED}/{label}/{k}/sha").hex * 2
    upload = UploadReceived(
        upload_id=upload_id,
        photographer_id=photographer,
        filename=f"IMG_{1000 + k}.HEIC" if heic else f"DSC{k:05d}.JPG",
        content_type="image/heic" if heic else "image/jpeg",
        bytes=size,
        sha256=sha,
        bucket="photostream",
        original_key=f"originals/{photographer}/{received:%Y/%m/%d}/{upload_id}",
        received_at=received,
        stored_at=published - timedelta(milliseconds=20),
        published_at=published,
        gateway_id=f"gw-{1 + k % 2}",
    )
    events: list[tuple[datetime, Event]] = [(published, upload)]
    if k % 200 == 100:
        reason, _, detail = PROCESSING_FAILURES[k // 200 % len(PROCESSING_FAILURES)]
        failed_at = started + 120 * ms
        failure = ProcessingFailed(
            upload_id=upload_id,
            photographer_id=photographer,
            stage=Stage.PROCESSING,
            reason=reason,
            detail=detail,
            source_topic="photo-uploads",
            source_partition=k % 12,
            source_offset=k,
            received_at=received,
            failed_at=failed_at,
        )
        return [*events, (failed_at, failure)]
    clock = received - timedelta(days=2, hours=rng.randint(0, 12))
    clock = clock.replace(hour=rng.choices(range(24), weights=HOURS)[0], microsecond=0)
    offset = UTC_OFFSETS[photographer_index]
    metadata = ImageMetadata(
        width=width,
        height=height,
        format="heif" if heic else "jpeg",
        bands=3,
        has_alpha=False,
        bytes=size,
        megapixels=megapixels,
        icc_profile="Display P3" if heic else "sRGB IEC61966-2.1",
        camera_make=None if no_exif else camera.make,
        camera_model=None if no_exif else camera.model,
        lens=None if no_exif else camera.lens,
        iso=None if no_exif else rng.choice(ISO),
        exposure_time=None if no_exif else rng.choice(EXPOSURE),
        f_number=None if no_exif else rng.choice(F_NUMBER),
        captured_at=None if no_exif else f"{clock:%Y-%m-%dT%H:%M:%S}",
        captured_at_utc_offset=None if no_exif else offset,
        orientation=None if no_exif else 1,
    )
    processing_ms = (processed - started) // ms
    image = ImageProcessed(
        upload_id=upload_id,
        photographer_id=photographer,
        sha256=sha,
        metadata=metadata,
        phash=f"{rng.getrandbits(64):016x}",
        placeholder="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        variant_names=tuple(dict.fromkeys(name for name, _, _, _ in VARIANTS)),
        received_at=received,
        processing_started_at=started,
        processed_at=processed,
        decode_ms=int(processing_ms * 0.3),
        metadata_ms=5,
        hash_ms=int(processing_ms * 0.08),
        render_ms=max(0, processing_ms - int(processing_ms * 0.38) - 5),
    )
    long_edge = max(width, height)
    variants = tuple(
        StoredVariant(
            variant=name,
            format=fmt,
            content_type=CONTENT_TYPES[fmt],
            width=edge if name == "square" else round(width * edge / long_edge),
            height=edge if name == "square" else round(height * edge / long_edge),
            bytes=int(typical * (0.7 + 0.6 * rng.random())),
            key=f"derivatives/{photographer}/{received:%Y/%m/%d}/{upload_id}/{name}.{EXTENSIONS[fmt]}",
            sha256=uuid.uuid5(upload_id, f"{name}.{fmt}").hex * 2,
        )
        for name, fmt, edge, typical in VARIANTS
    )
    ready = ImageReady(
        upload_id=upload_id,
        photographer_id=photographer,
        event_id=str(uuid.uuid5(upload_id, "ready")),
        variants=variants,
        received_at=received,
        ready_at=ready_at,
    )
    return [*events, (processed, image), (ready_at, ready)]


def batches(events: Sequence[Event], size: int = BATCH_EVENTS) -> list[dict[str, list[list[Any]]]]:
    """The events as the sink batches them: ``size`` events at a time, their rows gathered per table."""
    out = []
    for begin in range(0, len(events), size):
        tables: dict[str, list[list[Any]]] = defaultdict(list)
        for event in events[begin : begin + size]:
            for table, rows in rows_for(event).items():
                tables[table].extend(rows)
        out.append(dict(tables))
    return out


async def insert_batches(writer: Writer, tables_per_batch: Sequence[dict[str, list[list[Any]]]]) -> int:
    """Insert each batch through the sink's writer, one insert per table as the sink's flush does; rows written."""
    written = 0
    for tables in tables_per_batch:
        for table, rows in tables.items():
            await writer.insert(table, rows, TABLE_COLUMNS[table])
            written += len(rows)
    return written


async def insert_tail(writer: Writer, tail: Tail) -> tuple[int, int]:
    """Insert the tail in batches of ``BATCH_EVENTS`` events, then the middle batch once more (a replay).

    Returns:
        The number of the replayed batch, and the rows it inserted again.
    """
    prepared = batches(tail.events)
    await insert_batches(writer, prepared)
    replayed = len(prepared) // 2
    rows = await insert_batches(writer, [prepared[replayed]]) if prepared else 0
    return replayed, rows
