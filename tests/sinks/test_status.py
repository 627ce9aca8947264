"""Upload status from ClickHouse through a reader that holds the client itself.

That is the path every process takes with a ClickHouse server (``reader_for`` with an http
DSN); here the same client API runs on chDB, loaded with a synthetic run and its replay.
"""

from __future__ import annotations

import pytest

from photostream.config import ClickHouseSettings
from photostream.warehouse import EngineReader
from producers.status import ClickHouseStatus
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
    yield pipeline, status
    await status.close()
    writer.close()


async def test_every_upload_reads_as_its_final_status(loaded):
    pipeline, status = loaded
    for truth in pipeline.truth:
        progress = await status.progress(str(truth.upload_id), truth.photographer_id)
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
    pipeline, status = loaded
    done = pipeline.with_status("completed")[0]
    other = next(t.photographer_id for t in pipeline.truth if t.photographer_id != done.photographer_id)
    assert (await status.progress(str(done.upload_id), other)).status == "queued"
