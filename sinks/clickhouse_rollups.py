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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    """

    view: str
    source: str
    keys: tuple[str, ...]
    per_day: tuple[str, ...]
    combined: tuple[str, ...]
    where: str = ""

    @property
    def rollup(self) -> str:
        """The refreshable materialized view holding the per-day rows."""
        return f"{self.view}_by_day"

    @property
    def key_names(self) -> str:
        """The keys by name, as the rollup and the view's grouping see them."""
        return ", ".join(_name(key) for key in self.keys)

    def statements(self) -> tuple[str, str]:
        """The DDL (with ``{db}``): the rollup, then the view that reads it.

        Every name in it comes from this module's constants, never from input.
        """
        names = self.key_names
        measures = ", ".join(_name(aggregate) for aggregate in self.per_day)
        aggregated = f"{', '.join(self.keys)}, {', '.join(self.per_day)} FROM {{db}}.{self.source} FINAL"
        # Each day's groups, with the newest block among the rows read; every group of a day then gets the day's.
        rollup = (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{self.rollup} {REFRESH} "  # noqa: S608
            "ENGINE = MergeTree ORDER BY partition_id AS "
            f"SELECT partition_id, max(block) OVER (PARTITION BY partition_id) AS block, {names}, {measures} FROM ("
            "SELECT _partition_id AS partition_id, max(toUInt64(splitByChar('_', _part)[3])) AS block, "
            f"{aggregated} GROUP BY partition_id, {names})"
        )
        current = (
            "SELECT partition_id, toUInt64(max(max_block_number)) AS block FROM system.parts "  # noqa: S608
            f"WHERE database = '{{db}}' AND table = '{self.source}' AND active GROUP BY partition_id"
        )
        rolled_up = (
            f"SELECT {names}, {measures} FROM {{db}}.{self.rollup} "  # noqa: S608
            f"WHERE (partition_id, block) IN ({current})"
        )
        changed = (
            f"SELECT partition_id FROM ({current}) "  # noqa: S608
            f"WHERE (partition_id, block) NOT IN (SELECT partition_id, block FROM {{db}}.{self.rollup})"
        )
        live = f"SELECT {aggregated} WHERE _partition_id IN ({changed}) GROUP BY {names}"
        where = f" WHERE {self.where}" if self.where else ""
        view = (
            f"CREATE OR REPLACE VIEW {{db}}.{self.view} AS SELECT {names}, {', '.join(self.combined)} "  # noqa: S608
            f"FROM ({rolled_up} UNION ALL {live}){where} GROUP BY {names}"
        )
        return rollup, view


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

ROLLUPS = (CAMERAS, DUPLICATES_PER_PHOTOGRAPHER, FAILURES_BY_REASON, CAPTURE_HOURS)
"""Every all-time view that reads a daily rollup."""
