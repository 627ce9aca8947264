"""The ClickHouse sink's flush, on chDB: the ready row, which marks an image completed, goes in last; deletions
come in from their own topic."""

from __future__ import annotations

import pytest

from photostream.config import ClickHouseSettings
from schemas.events import ImageReady
from schemas.serde import EventSerde
from schemas.topics import PHOTO_DELETED, TOPIC_BY_EVENT
from sinks.clickhouse import TOPICS, ClickHouseSink
from sinks.clickhouse_schema import migrate
from sinks.consumer import Received
from sinks.writer import ClickHouseWriter
from tests.sinks.pipeline_data import DATABASE, build_pipeline, deletion

pytestmark = pytest.mark.integration


class RecordingWriter(ClickHouseWriter):
    """The real writer, remembering the order of its inserts."""

    inserted: list[str]

    async def insert(self, table, rows, columns) -> None:
        await super().insert(table, rows, columns)
        self.inserted.append(table)


async def test_the_ready_rows_are_inserted_after_everything_else_of_the_batch(tmp_path):
    writer = RecordingWriter(ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}", database=DATABASE))
    writer.inserted = []
    serde = EventSerde()
    try:
        await writer.run(migrate, DATABASE)
        sink = ClickHouseSink(writer, serde)
        # ImageReady events first in the batch, so arrival order alone would insert them first.
        events = sorted(build_pipeline().events, key=lambda e: not isinstance(e, ImageReady))
        for offset, event in enumerate(events):
            topic = TOPIC_BY_EVENT[type(event)]
            await sink.add(Received(topic, 0, offset, serde.encode(event, topic)))
        await sink.flush()
        counts = {
            table: (await writer.run(lambda c, t=table: c.command(f"SELECT count() FROM {DATABASE}.{t}")))
            for table in ("ready", "variants")
        }
    finally:
        writer.close()
    assert writer.inserted[-1] == "ready"
    assert {"uploads", "images", "variants", "failures"} <= set(writer.inserted[:-1])
    assert counts["ready"] > 0
    assert counts["variants"] > 0


async def test_deletions_from_photo_deleted_are_inserted(tmp_path):
    writer = RecordingWriter(ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}", database=DATABASE))
    writer.inserted = []
    serde = EventSerde()
    pipeline = build_pipeline()
    gone = pipeline.with_status("completed")[0]
    try:
        await writer.run(migrate, DATABASE)
        sink = ClickHouseSink(writer, serde)
        for offset, event in enumerate((*pipeline.events, deletion(gone))):
            topic = TOPIC_BY_EVENT[type(event)]
            assert topic in TOPICS
            await sink.add(Received(topic, 0, offset, serde.encode(event, topic)))
        await sink.flush()
        deleted = await writer.run(
            lambda c: c.query(f"SELECT upload_id, deleted_at IS NOT NULL FROM {DATABASE}.image_stages").result_rows
        )
    finally:
        writer.close()
    assert PHOTO_DELETED in TOPICS
    assert writer.inserted.index("deletions") < writer.inserted.index("ready")
    assert {upload_id for upload_id, is_deleted in deleted if is_deleted} == {gone.upload_id}
