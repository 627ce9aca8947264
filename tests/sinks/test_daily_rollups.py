"""The all-time views read daily rollups, and answer exactly what a scan of every row with FINAL answers.

Before the rollups are refreshed, after, and after writes into days the rollup already holds (a replay, a
re-processing that changes an answer, a deletion): a changed day must be read from its rows until the next refresh.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from photostream.clients import clickhouse_client
from photostream.config import ClickHouseSettings
from schemas.events import ImageProcessed, UploadReceived
from sinks.clickhouse_rollups import ROLLUPS
from sinks.clickhouse_schema import migrate, refresh_rollups
from tests.sinks.pipeline_data import DATABASE, build_pipeline, chdb, deletion, insert_events

pytestmark = pytest.mark.integration

DAYS = 3

# The images the library-like views count: not deleted (no deletion names the upload as received then).
IMAGES = f"""(SELECT * FROM {DATABASE}.images FINAL WHERE (photographer_id, upload_id, received_at) NOT IN (
    SELECT photographer_id, upload_id, received_at FROM {DATABASE}.deletions))"""

# What each view answers, computed the slow way: every row of all time, with FINAL.
SCANS = {
    "cameras": f"""
        SELECT camera_make, camera_model, lens, count() AS images, uniqExact(photographer_id) AS photographers
        FROM {IMAGES} WHERE camera_make IS NOT NULL GROUP BY camera_make, camera_model, lens""",
    "duplicates_per_photographer": f"""
        SELECT photographer_id, count() AS images, countIf(duplicate_kind = 'exact') AS exact_duplicates,
            countIf(duplicate_kind = 'near') AS near_duplicates,
            round((exact_duplicates + near_duplicates) / images, 4) AS duplicate_ratio
        FROM {IMAGES} GROUP BY photographer_id""",
    "failures_by_reason": f"""
        SELECT stage, reason, count() AS failures, uniqExact(upload_id) AS uploads,
            uniqExact(photographer_id) AS photographers, max(failed_at) AS last_failed_at
        FROM {DATABASE}.failures FINAL GROUP BY stage, reason""",
    "capture_hours": f"""
        SELECT toHour(captured_at_local) AS hour, count() AS images, round(avg(megapixels), 1) AS avg_megapixels,
            countIf(megapixels >= 20) AS over_20_mp
        FROM {IMAGES} WHERE captured_at_local IS NOT NULL GROUP BY hour""",
}


def _day(days_ago: int, run: int = 0) -> list:
    """The sample run ``days_ago`` days back, with upload ids of that day's own (of that run's, for several)."""
    sample = build_pipeline(datetime.now(UTC) - timedelta(days=days_ago))
    return [
        dataclasses.replace(event, upload_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{days_ago}/{run}/{event.upload_id}"))
        for event in sample.events
    ]


def _answers(client, source: str) -> dict[str, list[tuple]]:
    queries = {name: f"SELECT * FROM {DATABASE}.{name}" for name in SCANS} if source == "views" else SCANS
    return {name: sorted(client.query(sql).result_rows, key=repr) for name, sql in queries.items()}


def _partitions(client, table: str) -> int:
    sql = (
        "SELECT uniqExact(partition_id) FROM system.parts "
        f"WHERE database = '{DATABASE}' AND table = '{table}' AND active"
    )
    return client.query(sql).result_rows[0][0]


def _days_held(client) -> dict[str, int]:
    """Per rollup, how many day partitions it holds as they are now (read from it, not from rows)."""
    held = {}
    for rollup in ROLLUPS:
        # A rollup that leaves deleted images out also records the newest block of the deletions of each day.
        tables = [rollup.source, rollup.deletions] if rollup.deletions else [rollup.source]
        blocks = ", ".join(f"toUInt64(maxIf(max_block_number, table = '{table}'))" for table in tables)
        current = (
            f"SELECT partition_id, {blocks} FROM system.parts WHERE database = '{DATABASE}' "
            f"AND has({tables}, table) AND active GROUP BY partition_id"
        )
        held_blocks = "block, deleted_block" if rollup.deletions else "block"
        sql = (
            f"SELECT uniqExact(partition_id) FROM {DATABASE}.{rollup.rollup} "
            f"WHERE (partition_id, {held_blocks}) IN ({current})"
        )
        held[rollup.view] = client.query(sql).result_rows[0][0]
    return held


def test_the_all_time_views_match_a_full_scan_before_and_after_refreshes_and_late_writes(tmp_path):
    with chdb(tmp_path) as client:
        migrate(client, DATABASE)
        days = {days_ago: _day(days_ago) for days_ago in range(DAYS)}
        for events in days.values():
            insert_events(client, events)
        assert _answers(client, "views") == _answers(client, "scans"), "before any refresh"

        refresh_rollups(client, DATABASE)
        held = _days_held(client)
        assert held == {rollup.view: _partitions(client, rollup.source) for rollup in ROLLUPS}
        assert held["cameras"] >= DAYS
        assert _answers(client, "views") == _answers(client, "scans"), "after a refresh"

        # Writes into days the rollup holds: a replay of the oldest day, and a re-processing of an image of
        # yesterday that changes its camera, hour and megapixels.
        before = _answers(client, "scans")
        insert_events(client, days[DAYS - 1])
        image = next(event for event in days[1] if isinstance(event, ImageProcessed) and event.metadata.camera_make)
        metadata = dataclasses.replace(
            image.metadata, camera_make="Leica", camera_model="M11", megapixels=60.3, captured_at="2025-05-31T23:59:00"
        )
        reprocessed = dataclasses.replace(
            image, metadata=metadata, processed_at=image.processed_at + timedelta(minutes=1)
        )
        insert_events(client, [reprocessed])
        after = _answers(client, "scans")
        assert after["cameras"] != before["cameras"]
        assert after["capture_hours"] != before["capture_hours"]
        assert _days_held(client)["cameras"] == held["cameras"] - 2  # the two written days: read from their rows
        assert _answers(client, "views") == after, "after writes into days the rollup held"

        refresh_rollups(client, DATABASE)
        assert _answers(client, "views") == after, "after the next refresh"


def _uploads_of(events: list) -> dict[uuid.UUID, UploadReceived]:
    return {event.upload_id: event for event in events if isinstance(event, UploadReceived)}


def test_deletions_in_days_the_rollups_hold_are_seen_at_once_and_kept_by_the_next_refresh(tmp_path):
    with chdb(tmp_path) as client:
        migrate(client, DATABASE)
        days = {days_ago: _day(days_ago) for days_ago in range(DAYS)}
        for events in days.values():
            insert_events(client, events)
        refresh_rollups(client, DATABASE)
        before = _answers(client, "scans")

        # Deleted: a processed image of the oldest day and one of yesterday, and an upload of the oldest day no
        # worker took (it changes no answer, but its day has changed).
        oldest = next(event for event in days[DAYS - 1] if isinstance(event, ImageProcessed))
        yesterday = next(e for e in days[1] if isinstance(e, ImageProcessed) and e.metadata.camera_make)
        processed = {event.upload_id for event in days[DAYS - 1] if isinstance(event, ImageProcessed)}
        waiting = next(upload for upload in _uploads_of(days[DAYS - 1]).values() if upload.upload_id not in processed)
        insert_events(client, [deletion(oldest), deletion(yesterday), deletion(waiting)])
        after = _answers(client, "scans")
        assert after["cameras"] != before["cameras"]
        assert after["duplicates_per_photographer"] != before["duplicates_per_photographer"]
        assert after["failures_by_reason"] == before["failures_by_reason"]  # the failures happened all the same
        held = _days_held(client)
        assert held["cameras"] == _partitions(client, "images") - 2  # the two days deleted in: read from rows
        assert held["failures_by_reason"] == _partitions(client, "failures")  # deletions do not touch it
        assert _answers(client, "views") == after, "after deletions in days the rollups held"

        refresh_rollups(client, DATABASE)
        assert _days_held(client)["cameras"] == _partitions(client, "images")  # days with deletions are held too
        assert _answers(client, "views") == after, "after the next refresh"

        # The image of yesterday sent again today: the same upload id, received now, processed now.
        now = datetime.now(UTC) - timedelta(seconds=5)
        again = [
            dataclasses.replace(event, received_at=now, **({"processed_at": now} if event is yesterday else {}))
            for event in (_uploads_of(days[1])[yesterday.upload_id], yesterday)
        ]
        insert_events(client, again)
        images = {name: sum(row[3] for row in _answers(client, name)["cameras"]) for name in ("scans", "views")}
        assert images == dict.fromkeys(("scans", "views"), sum(row[3] for row in after["cameras"]) + 1)
        assert _answers(client, "views") == _answers(client, "scans"), "after the same photo was sent again"


ROUNDS = 40


def test_the_views_answer_whole_while_their_rollups_are_refreshed_under_them(tmp_path):
    """Analysts ask while the sink writes and the rollups refresh: no answer may miss a day or count one twice.

    A refresh replaces a rollup while questions run, and a read of it can find it empty for a moment. Each round
    writes a new sample run into one of the days, then asks every view while a second session refreshes all the
    rollups without pause.
    """
    with chdb(tmp_path) as client:
        migrate(client, DATABASE)
        refresher = clickhouse_client(ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}"))
        stop = threading.Event()
        refreshes = 0

        def refresh_without_pause() -> None:
            nonlocal refreshes
            while not stop.is_set():
                for rollup in ROLLUPS:
                    refresher.command(f"SYSTEM REFRESH VIEW {DATABASE}.{rollup.rollup}")
                refreshes += 1

        thread = threading.Thread(target=refresh_without_pause)
        thread.start()
        wrong = []
        try:
            for round_ in range(ROUNDS):
                insert_events(client, _day(round_ % DAYS, run=round_))
                views, scans = _answers(client, "views"), _answers(client, "scans")
                wrong += [(round_, name) for name in SCANS if views[name] != scans[name]]
        finally:
            stop.set()
            thread.join()
            refresher.close()
        assert refreshes >= ROUNDS  # the rollups were replaced again and again while the views were read
        assert wrong == []
