"""Upload status from ClickHouse through a reader that holds the client itself.

That is the path every process takes with a ClickHouse server (``reader_for`` with an http
DSN); here the same client API runs on chDB, loaded with a synthetic run and its replay.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from photostream.config import ClickHouseSettings
from photostream.warehouse import EngineReader
from producers.status import ClickHouseStatus
from schemas.events import ImageProcessed, ImageReady
from sinks.clickhouse_schema import migrate
from sinks.writer import ClickHouseWriter
from tests.sinks.pipeline_data import DATABASE, build_pipeline, insert_events

pytestmark = pytest.mark.integration


@pytest.fixture
async def loaded(tmp_path):
    pipeline = build_pipeline()
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}", database=DATABASE)
    writer = ClickHouseWriter(settings)
    await writer.run(migrate, DATABASE)
    await writer.run(insert_events, pipeline.events)
    await writer.run(insert_events, pipeline.events)  # a replay
    status = ClickHouseStatus(EngineReader(settings), DATABASE)
    yield pipeline, status, writer
    await status.close()
    writer.close()


@pytest.mark.parametrize("day_known", [False, True], ids=["any-day", "received-day"])
async def test_every_upload_reads_as_its_final_status(loaded, day_known):
    pipeline, status, _ = loaded
    for truth in pipeline.truth:
        received_at = truth.received_at if day_known else None
        progress = await status.progress(str(truth.upload_id), truth.photographer_id, received_at)
        assert progress.status == truth.status, truth
        if truth.status == "completed":
            assert progress.metadata is not None
            assert progress.metadata["width"] > 0
            assert {v["name"] for v in progress.variants} == {"web", "thumb", "square"}
            assert all(v["key"].startswith("derivatives/") for v in progress.variants)
            assert (progress.duplicate_of is not None) == (truth.duplicate_kind is not None)
        if truth.status == "failed":
            assert progress.error is not None
            assert progress.error["code"]


async def test_another_photographer_sees_nothing_of_it(loaded):
    pipeline, status, _ = loaded
    done = pipeline.with_status("completed")[0]
    other = next(t.photographer_id for t in pipeline.truth if t.photographer_id != done.photographer_id)
    assert (await status.progress(str(done.upload_id), other)).status == "queued"


async def test_a_reprocessing_reads_as_its_newest_version(loaded):
    """The status picks the newest row itself (no FINAL): a later processing of the image wins, variant by variant."""
    pipeline, status, writer = loaded
    done = pipeline.with_status("completed")[0]
    image = next(e for e in pipeline.events if isinstance(e, ImageProcessed) and e.upload_id == done.upload_id)
    ready = next(e for e in pipeline.events if isinstance(e, ImageReady) and e.upload_id == done.upload_id)
    later = timedelta(minutes=5)
    again = [
        dataclasses.replace(
            image,
            metadata=dataclasses.replace(image.metadata, width=1234),
            processed_at=image.processed_at + later,
        ),
        dataclasses.replace(
            ready,
            variants=tuple(dataclasses.replace(v, bytes=v.bytes + 7) for v in ready.variants),
            ready_at=ready.ready_at + later,
        ),
    ]
    await writer.run(insert_events, again)

    progress = await status.progress(str(done.upload_id), done.photographer_id)

    assert progress.metadata is not None
    assert progress.metadata["width"] == 1234
    newest = {(v.variant, v.format): v.bytes + 7 for v in ready.variants}
    assert {(v["name"], v["format"]): v["bytes"] for v in progress.variants} == newest
    assert len(progress.variants) == len(newest)
    assert [v["name"] for v in progress.variants] == sorted(v["name"] for v in progress.variants)


async def test_the_received_day_narrows_the_lookup_to_that_day(loaded):
    pipeline, status, _ = loaded
    done = pipeline.with_status("completed")[0]
    other_day = done.received_at - timedelta(days=1)
    assert (await status.progress(str(done.upload_id), done.photographer_id, other_day)).status == "queued"


class FlushLandsBetweenTheReads:
    """A reader on which the sink's flush that completes an image lands after the variants were read
    and before the ready row is: the status's concurrent reads can meet a flush that way."""

    def __init__(self, inner: EngineReader, flush) -> None:
        self.inner = inner
        self.flush = flush
        self.flushed = asyncio.Event()

    async def query(self, sql, parameters=None):
        if f"FROM {DATABASE}.variants" in sql and not self.flushed.is_set():
            before = await self.inner.query(sql, parameters)
            await self.flush()
            self.flushed.set()
            return before
        if f"FROM {DATABASE}.ready" in sql:
            await self.flushed.wait()
        return await self.inner.query(sql, parameters)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_completed_image_has_its_variants_even_when_the_flush_lands_between_the_reads(tmp_path):
    pipeline = build_pipeline()
    done = pipeline.with_status("completed")[0]
    ready = next(e for e in pipeline.events if isinstance(e, ImageReady) and e.upload_id == done.upload_id)
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}", database=DATABASE)
    writer = ClickHouseWriter(settings)
    try:
        await writer.run(migrate, DATABASE)
        await writer.run(insert_events, [e for e in pipeline.events if e is not ready])
        reader = FlushLandsBetweenTheReads(EngineReader(settings), lambda: writer.run(insert_events, [ready]))
        status = ClickHouseStatus(reader, DATABASE)
        progress = await status.progress(str(done.upload_id), done.photographer_id, done.received_at)
        await status.close()
    finally:
        writer.close()
    assert reader.flushed.is_set()
    assert progress.status == "completed"
    assert {(v["name"], v["format"]) for v in progress.variants} == {(v.variant, v.format) for v in ready.variants}
