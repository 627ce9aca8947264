"""Daily rollups for the all-time views: days that did not change are read from a small table, not from rows.

An all-time question (top cameras, duplicates per photographer, failures by reason, capture hours) would
otherwise read every row of history with ``FINAL`` on each ask, a cost that grows with the history kept. Each
such view is instead the sum of two parts:

- a rollup: the view's aggregates per day partition of its source table, recomputed in the background by a
  refreshable materialized view (``REFRESH EVERY 10 MINUTE``, the whole rollup replaced at once);
- the rows themselves, with ``FINAL``, of each day the rollup does not hold as it is now.

"As it is now" is decided by block numbers, not by the clock. Every insert into a partition gets a higher
block number, merges keep the highest, and a part's name carries it (``<partition>_<min>_<max>_<level>``). The
rollup records, per day, the highest block among the rows it aggregated; a day is taken from the rollup only
while that is still the partition's highest active block in ``system.parts``. Any insert since (a replay, a
late image, a re-processing) makes the day live again until the next refresh, so answers stay exact whatever
the refresh lags, and a rollup that was never refreshed only makes the view slower. Today changes all the
time and is read live; every other day is read from the rollup, a few rows per day.

The library-like views (cameras, duplicates, capture hours) leave deleted images out (migration 5). Their rollups
keep every image, flagged ``deleted`` when a row of the ``deletions`` table names its incarnation (upload id and
``received_at``), and the view reads only the unflagged ones. A deletion is a write into the day of the image it
deletes (``deletions`` is partitioned by the same day), so a day is taken from the rollup only while the newest
blocks of both tables are those the rollup read: deleting an old image makes its day live until the next refresh.
Both blocks come from the rows the refresh read, in one join, so a deletion landing during a refresh can only make
a day live, never leave it rolled up without that deletion.

A question reads the rollup once (migration 6). A refresh swaps in a new rollup while questions run, and a read
can find it empty for a moment, so the days taken from the rollup and the days read from rows must come from one
read of it: from any one state of the rollup, even an empty one, each day lands in exactly one of the two halves.
The views built by migrations 4 and 5 read it twice; their statements now build the one-read view too (a view
holds no data, and migration 6 replaces it in every database that ran the older text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

REFRESH = "REFRESH EVERY 10 MINUTE"

_ALIAS = re.compile(r"\bAS\s+([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class DailyRollup:
    """An all-time view over ``source``, grouped by ``keys``, kept per day partition.

    Attributes:
        view: The view analysts read; its rollup is ``<view>_by_day``.
        source: The table aggregated (partitioned by day, read with ``FINAL``).
        keys: The grouping: column names, or ``expression AS name``.
        per_day: The aggregates of one day's rows (``-State`` for what does not add up, like ``uniqExact``).
        combined: The view's aggregates over the days' rows, by the names ``per_day`` gave.
        where: A filter on the grouped rows (the keys), applied when the view is read; the rollup keeps
            every group, so that each day's newest block is seen whatever the filter.
        deletions: A table of deleted uploads (``photographer_id``, ``upload_id``, ``received_at``, partitioned
            by the same day as ``source``) whose rows the view leaves out; empty to keep every row.
    """

    view: str
    source: str
    keys: tuple[str, ...]
    per_day: tuple[str, ...]
    combined: tuple[str, ...]
    where: str = ""
    deletions: str = ""

    @property
    def rollup(self) -> str:
        """The refreshable materialized view holding the per-day rows."""
        return f"{self.view}_by_day"

    @property
    def key_names(self) -> str:
        """The keys by name, as the rollup and the view's grouping see them."""
        return ", ".join(_name(key) for key in self.keys)

    @property
    def stamp(self) -> tuple[str, ...]:
        """What the rollup records of each day: its partition, and the newest block it read of each table."""
        return ("partition_id", "block", "deleted_block") if self.deletions else ("partition_id", "block")

    def statements(self) -> tuple[str, str]:
        """The DDL (with ``{db}``): the rollup, then the view that reads it.

        Every name in it comes from this module's constants, never from input.
        """
        return (self._rollup_without_deleted() if self.deletions else self._rollup()), self.view_statement()

    def _rollup(self) -> str:
        """Each day's groups, with the newest block among the rows read; every group of a day then gets the day's."""
        names = self.key_names
        measures = ", ".join(_name(aggregate) for aggregate in self.per_day)
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{self.rollup} {REFRESH} "  # noqa: S608
            "ENGINE = MergeTree ORDER BY partition_id AS "
            f"SELECT partition_id, max(block) OVER (PARTITION BY partition_id) AS block, {names}, {measures} FROM ("
            f"SELECT _partition_id AS partition_id, max({_BLOCK}) AS block, {', '.join(self.keys)}, "
            f"{', '.join(self.per_day)} FROM {{db}}.{self.source} FINAL GROUP BY partition_id, {names})"
        )

    def _rollup_without_deleted(self) -> str:
        """The rollup when deletions are left out: every image of a day, grouped also by whether it is deleted.

        The source's rows (with ``FINAL``) and the deletions' keys are fully joined, so every deletion row of a
        day is read, matched or not, and the day records the newest block of each table among the rows read.
        """
        names = self.key_names
        measures = ", ".join(_name(aggregate) for aggregate in self.per_day)
        source = (
            f"SELECT _partition_id AS partition_id, {_BLOCK} AS row_block, 1 AS is_row, * "  # noqa: S608
            f"FROM {{db}}.{self.source} FINAL"
        )
        # Grouped by key: a replayed deletion (two rows until a merge) must not double the image it matches.
        deleted = (
            f"SELECT _partition_id AS partition_id, {_INCARNATION}, max({_BLOCK}) AS deletion_block, "  # noqa: S608
            f"1 AS is_deleted FROM {{db}}.{self.deletions} GROUP BY partition_id, {_INCARNATION}"
        )
        # ifNull: the same answer whether or not the session pads a join's missing side with NULLs.
        grouped = (
            "SELECT partition_id, max(ifNull(row_block, 0)) AS rows_block, "  # noqa: S608
            "max(ifNull(deletion_block, 0)) AS deletions_block, ifNull(is_row, 0) AS source_row, "
            f"ifNull(is_deleted, 0) AS deleted, {', '.join(self.keys)}, {', '.join(self.per_day)} "
            f"FROM ({source}) AS source FULL JOIN ({deleted}) AS deletions USING (partition_id, {_INCARNATION}) "
            f"GROUP BY partition_id, source_row, deleted, {names}"
        )
        days = (
            "SELECT partition_id, max(rows_block) OVER day AS block, "  # noqa: S608
            f"max(deletions_block) OVER day AS deleted_block, source_row, deleted, {names}, {measures} "
            f"FROM ({grouped}) WINDOW day AS (PARTITION BY partition_id)"
        )
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{self.rollup} {REFRESH} "  # noqa: S608
            "ENGINE = MergeTree ORDER BY partition_id AS "
            f"SELECT partition_id, block, deleted_block, deleted, {names}, {measures} "
            f"FROM ({days}) WHERE source_row = 1"
        )

    def view_statement(self) -> str:
        """The view's DDL (with ``{db}``): the rollup's rows of the days it holds as they are now, rows for the rest.

        The rollup is read once, into a scalar, as are the tables' parts, and both halves of the answer come from
        those two reads. A refresh replaces the rollup while questions run, and a read can even find it empty for
        a moment: two reads of it in one question could each see another rollup and leave a day out or count it
        twice. From one read, a day is either held (its stamp matches the parts) or read from rows, never both.
        """
        keys = [_name(key) for key in self.keys]
        measures = [_name(aggregate) for aggregate in self.per_day]
        columns = [*self.stamp, *(["deleted"] if self.deletions else []), *keys, *measures]
        of_row = {column: f"tupleElement(row, {index})" for index, column in enumerate(columns, start=1)}
        row_stamp = f"({', '.join(of_row[column] for column in self.stamp)})"
        tables = (self.source, self.deletions) if self.deletions else (self.source,)
        blocks = ", ".join(f"toUInt64(maxIf(max_block_number, table = '{table}'))" for table in tables)
        scalars = (
            # Each day of the tables as it is now: (partition_id, newest block of each table).
            f"(SELECT groupArray(day) FROM (SELECT (partition_id, {blocks}) AS day FROM system.parts "  # noqa: S608
            f"WHERE database = '{{db}}' AND table IN ({', '.join(repr(t) for t in tables)}) AND active "
            "GROUP BY partition_id)) AS days_now",
            f"(SELECT groupArray(({', '.join(columns)})) FROM {{db}}.{self.rollup}) AS rolled",  # noqa: S608
            f"arrayIntersect(days_now, arrayMap(row -> {row_stamp}, rolled)) AS held_days",
            "arrayMap(day -> tupleElement(day, 1), arrayFilter(day -> NOT has(held_days, day), days_now)) AS live_days",
        )
        held = " AND ".join([f"has(held_days, {row_stamp})", *([f"{of_row['deleted']} = 0"] if self.deletions else [])])
        from_rollup = (
            f"SELECT {', '.join(f'{of_row[c]} AS {c}' for c in [*keys, *measures])} "  # noqa: S608
            f"FROM (SELECT arrayJoin(rolled) AS row) WHERE {held}"
        )
        # A set of keys, built once per question: no lookup per row.
        not_deleted = (
            f" AND ({_INCARNATION}) NOT IN (SELECT {_INCARNATION} FROM {{db}}.{self.deletions} "  # noqa: S608
            "WHERE has(live_days, _partition_id))"
            if self.deletions
            else ""
        )
        from_rows = (
            f"SELECT {', '.join(self.keys)}, {', '.join(self.per_day)} FROM {{db}}.{self.source} FINAL "  # noqa: S608
            f"WHERE has(live_days, _partition_id){not_deleted} GROUP BY {self.key_names}"
        )
        where = f" WHERE {self.where}" if self.where else ""
        return (
            f"CREATE OR REPLACE VIEW {{db}}.{self.view} AS WITH {', '.join(scalars)} "  # noqa: S608
            f"SELECT {self.key_names}, {', '.join(self.combined)} "
            f"FROM ({from_rollup} UNION ALL {from_rows}){where} GROUP BY {self.key_names}"
        )


_BLOCK = "toUInt64(splitByChar('_', _part)[3])"
"""The highest block number of the part a row was read from (``<partition>_<min>_<max>_<level>``)."""

_INCARNATION = "photographer_id, upload_id, received_at"
"""What a deletion names: one upload as received at one time (a later upload of the same content lives on)."""


def _name(expression: str) -> str:
    """The name a select expression goes by: its alias, or the column itself."""
    alias = _ALIAS.search(expression)
    return alias.group(1) if alias else expression


CAMERAS = DailyRollup(
    view="cameras",
    source="images",
    keys=("camera_make", "camera_model", "lens"),
    per_day=("count() AS day_images", "uniqExactState(toString(photographer_id)) AS day_photographers"),
    combined=("sum(day_images) AS images", "uniqExactMerge(day_photographers) AS photographers"),
    where="camera_make IS NOT NULL",
)

DUPLICATES_PER_PHOTOGRAPHER = DailyRollup(
    view="duplicates_per_photographer",
    source="images",
    keys=("photographer_id",),
    per_day=(
        "count() AS day_images",
        "countIf(duplicate_kind = 'exact') AS day_exact",
        "countIf(duplicate_kind = 'near') AS day_near",
    ),
    combined=(
        "sum(day_images) AS images",
        "sum(day_exact) AS exact_duplicates",
        "sum(day_near) AS near_duplicates",
        "round((exact_duplicates + near_duplicates) / images, 4) AS duplicate_ratio",
    ),
)

FAILURES_BY_REASON = DailyRollup(
    view="failures_by_reason",
    source="failures",
    keys=("stage", "reason"),
    per_day=(
        "count() AS day_failures",
        "uniqExactState(upload_id) AS day_uploads",
        "uniqExactState(toString(photographer_id)) AS day_photographers",
        "max(failed_at) AS day_last_failed_at",
    ),
    combined=(
        "sum(day_failures) AS failures",
        "uniqExactMerge(day_uploads) AS uploads",
        "uniqExactMerge(day_photographers) AS photographers",
        "max(day_last_failed_at) AS last_failed_at",
    ),
)

CAPTURE_HOURS = DailyRollup(
    view="capture_hours",
    source="images",
    keys=("toHour(captured_at_local) AS hour",),
    per_day=(
        "count() AS day_images",
        "sum(megapixels) AS day_megapixels",
        "count(megapixels) AS day_with_megapixels",
        "countIf(megapixels >= 20) AS day_over_20_mp",
    ),
    combined=(
        "sum(day_images) AS images",
        "round(sum(day_megapixels) / sum(day_with_megapixels), 1) AS avg_megapixels",
        "sum(day_over_20_mp) AS over_20_mp",
    ),
    where="hour IS NOT NULL",
)

MIGRATION_4_ROLLUPS = (CAMERAS, DUPLICATES_PER_PHOTOGRAPHER, FAILURES_BY_REASON, CAPTURE_HOURS)
"""The rollups as migration 4 built them; shipped, so never changed."""

# Migration 5: the views counting the library (what photos there are, taken with what, at what hour, how many
# duplicates) leave deleted images out. Not failures_by_reason: the failures happened, deleted since or not.
CAMERAS_WITHOUT_DELETED = replace(CAMERAS, deletions="deletions")
DUPLICATES_PER_PHOTOGRAPHER_WITHOUT_DELETED = replace(DUPLICATES_PER_PHOTOGRAPHER, deletions="deletions")
CAPTURE_HOURS_WITHOUT_DELETED = replace(CAPTURE_HOURS, deletions="deletions")

MIGRATION_5_ROLLUPS = (
    CAMERAS_WITHOUT_DELETED,
    DUPLICATES_PER_PHOTOGRAPHER_WITHOUT_DELETED,
    CAPTURE_HOURS_WITHOUT_DELETED,
)
"""The rollups migration 5 rebuilt to leave deleted images out; shipped, so never changed."""

ROLLUPS = (
    CAMERAS_WITHOUT_DELETED,
    DUPLICATES_PER_PHOTOGRAPHER_WITHOUT_DELETED,
    FAILURES_BY_REASON,
    CAPTURE_HOURS_WITHOUT_DELETED,
)
"""Every all-time view that reads a daily rollup, as the newest migration left it."""
