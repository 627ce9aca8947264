"""Run the sinks as one service until SIGINT or SIGTERM.

One process holds the S3 sink, the ClickHouse sink and, for the embedded engine, the query
endpoint the other processes read through (chDB allows one process per data path). The sink
writes through its own session; the endpoint's queries run on read sessions of their own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from urllib.parse import urlsplit

from aiohttp import web

from photostream.config import (
    ClickHouseSettings,
    KafkaSettings,
    S3Settings,
    SchemaRegistrySettings,
    SinksSettings,
    clickhouse_settings,
)
from photostream.kafka_producer import EventProducer
from photostream.logs import announce
from photostream.objectstore import ObjectStore
from photostream.topics import ensure_topics
from photostream.warehouse import EngineReader, ensure_query_token
from schemas.serde import EventSerde
from schemas.topics import PHOTO_DELETED, PHOTO_VARIANTS
from sinks import clickhouse
from sinks.clickhouse_schema import migrate
from sinks.consumer import Sink, SinkLoop
from sinks.query_endpoint import query_routes
from sinks.s3 import S3Sink
from sinks.writer import ClickHouseWriter

log = logging.getLogger(__name__)


async def serve(
    sinks: SinksSettings,
    kafka: KafkaSettings,
    s3: S3Settings,
    warehouse: ClickHouseSettings,
    registry: SchemaRegistrySettings,
) -> None:
    """Run both sinks (and the query endpoint when the engine is embedded) until a signal."""
    writer = ClickHouseWriter(warehouse)
    applied = await writer.run(migrate, warehouse.database)
    if applied:
        log.info("ClickHouse schema migrated to version %s", max(applied))
    store = ObjectStore(s3)
    producer = EventProducer(kafka, delivery_timeout=sinks.kafka_delivery_timeout, client_id="photostream-s3-sink")
    serde = EventSerde(registry.url)

    def sink_loop(sink: Sink, group_id: str, topics: list[str], batch_seconds: float) -> SinkLoop:
        return SinkLoop(
            kafka,
            sink,
            group_id=group_id,
            topics=topics,
            batch_size=sinks.batch_size,
            batch_seconds=batch_seconds,
            retry_seconds=sinks.retry_seconds,
        )

    s3_sink = S3Sink(store, producer, serde, cache_control=sinks.cache_control)
    loops = [
        sink_loop(s3_sink, sinks.s3_group, [PHOTO_VARIANTS, PHOTO_DELETED], sinks.s3_batch_seconds),
        sink_loop(
            clickhouse.ClickHouseSink(writer, serde), sinks.clickhouse_group, clickhouse.TOPICS, sinks.batch_seconds
        ),
    ]
    runner = None
    reader = None
    if warehouse.embedded:
        reader = EngineReader(warehouse)
        app = web.Application()
        app.add_routes(query_routes(reader, ensure_query_token(warehouse)))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        address = urlsplit(warehouse.query_url)
        await web.TCPSite(runner, address.hostname or "127.0.0.1", address.port or 8124).start()
        log.info("answering read-only queries on %s", warehouse.query_url)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop_all, loops)
    announce(log, "sinks running")
    try:
        await asyncio.gather(*(sink_loop.run() for sink_loop in loops))
    finally:
        if runner is not None:
            await runner.cleanup()
        if reader is not None:
            await reader.close()
        producer.close()
        await store.close()
        writer.close()


def _stop_all(loops: list[SinkLoop]) -> None:
    for sink_loop in loops:
        sink_loop.stop()


def run_sinks() -> None:
    """Run the sinks with settings from the environment."""
    kafka = KafkaSettings()
    created = ensure_topics(kafka)
    if created:
        log.info("created topics %s", ", ".join(created))
    asyncio.run(serve(SinksSettings(), kafka, S3Settings(), clickhouse_settings(), SchemaRegistrySettings()))
