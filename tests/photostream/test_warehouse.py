"""Reads and the writer on one embedded engine: no query can stall or corrupt ingestion.

The cause of the stall found in the field: on chDB a query refused under ``readonly=1`` left
its session read-only, and the sink's inserts shared that session. A query that fails
mid-stream leaves the rest of its answer in the session. Each test here does what an analyst
may do, then checks that the writer still inserts and the reader still answers correctly.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from photostream.config import ClickHouseSettings
from photostream.warehouse import EngineReader, QueryLimitExceeded, ReadOnlyViolation, RemoteReader, WarehouseError
from sinks.clickhouse_schema import migrate
from sinks.query_endpoint import query_routes
from sinks.writer import ClickHouseWriter
from tests.sinks.pipeline_data import DATABASE, build_pipeline, insert_events

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(tmp_path):
    settings = ClickHouseSettings(
        dsn=f"chdb://{tmp_path / 'clickhouse'}", database=DATABASE, query_max_seconds=1, query_max_result_rows=1000
    )
    writer = ClickHouseWriter(settings)
    await writer.run(migrate, DATABASE)
    reader = EngineReader(settings)
    yield writer, reader
    await reader.close()
    writer.close()


async def uploads_count(reader: EngineReader) -> int:
    return (await reader.query("SELECT count() FROM uploads FINAL")).rows[0][0]


async def insert_one_batch(writer: ClickHouseWriter, pipeline) -> None:
    await writer.run(insert_events, pipeline.events)


async def test_a_refused_write_leaves_the_writer_writing(engine):
    writer, reader = engine
    pipeline = build_pipeline()
    with pytest.raises(ReadOnlyViolation):
        await reader.query(f"INSERT INTO {DATABASE}.uploads SELECT * FROM {DATABASE}.uploads LIMIT 1")
    with pytest.raises(ReadOnlyViolation):
        await reader.query("SET readonly = 0")
    await insert_one_batch(writer, pipeline)  # raised READONLY here when the sessions were shared
    assert await uploads_count(reader) == len(pipeline.uploaded)


async def test_a_failing_query_then_a_correct_answer(engine):
    writer, reader = engine
    with pytest.raises(WarehouseError, match="no_such_table"):
        await reader.query("SELECT count() FROM photostream.no_such_table")
    await insert_one_batch(writer, build_pipeline())
    assert (await reader.query("SELECT 1 + 1")).rows == ((2,),)


async def test_limits_answer_with_a_clear_error_and_leave_no_garbage_behind(engine):
    writer, reader = engine
    with pytest.raises(QueryLimitExceeded, match="read limit"):
        await reader.query("SELECT * FROM system.numbers")  # past the result rows, mid-stream
    with pytest.raises(QueryLimitExceeded, match="read limit"):
        await reader.query("SELECT count() FROM numbers(1e12) WHERE sipHash64(number) % 7 = 1")  # past the time
    with pytest.raises(ReadOnlyViolation):
        await reader.query("SELECT 1 SETTINGS max_execution_time = 1000")  # a limit cannot be lifted
    # The session that failed mid-stream was replaced: this answer is this query's and nothing else.
    for _ in range(4):
        assert (await reader.query("SELECT number FROM numbers(3)")).rows == ((0,), (1,), (2,))
    pipeline = build_pipeline()
    await insert_one_batch(writer, pipeline)
    assert await uploads_count(reader) == len(pipeline.uploaded)


async def test_inserts_do_not_wait_behind_a_slow_read(engine, tmp_path):
    writer, _ = engine
    settings = ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}", database=DATABASE, query_max_seconds=4)
    slow_reader = EngineReader(settings)
    pipeline = build_pipeline()
    try:
        slow = asyncio.create_task(
            slow_reader.query("SELECT count() FROM numbers(1e12) WHERE sipHash64(number) % 7 = 1")
        )
        await asyncio.sleep(0.3)  # the read is running
        started = time.monotonic()
        await insert_one_batch(writer, pipeline)
        inserted_in = time.monotonic() - started
        assert not slow.done(), "the read ended before the insert did: nothing was proven"
        with pytest.raises(QueryLimitExceeded):
            await slow
    finally:
        await slow_reader.close()
    # Timing is printed, never asserted (the machine is shared); the read ran on, the insert did not wait for it.
    print(f"a batch inserted in {inserted_in * 1000:.0f} ms while a read ran to its 4 s limit")


async def test_a_reader_started_before_the_token_file_recovers_once_it_exists(engine, aiohttp_server, tmp_path):
    """On a fresh stack the gateway may build its reader before the sinks wrote their token file."""
    _, reader = engine
    app = web.Application()
    app.add_routes(query_routes(reader, "the-sinks-token"))
    server = await aiohttp_server(app)
    token_file = tmp_path / "token"
    remote = RemoteReader(str(server.make_url("/")), lambda: token_file.read_text() if token_file.exists() else "")
    try:
        with pytest.raises(WarehouseError, match="Bearer token"):
            await remote.query("SELECT 1")
        token_file.write_text("the-sinks-token")
        # Queries sent at once (the status sends three) are refused together: every one must recover.
        answers = await asyncio.gather(*(remote.query(f"SELECT {n}") for n in range(3)))
        assert [answer.rows for answer in answers] == [((0,),), ((1,),), ((2,),)]
    finally:
        await remote.close()
