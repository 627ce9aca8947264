"""The Faust app: ``UploadHandler`` on ``photo-uploads``, and deletes taken out of the duplicate index.

As a worker starts on an upload it sends ``ProcessingStarted`` on ``photo-processing``, for clients
following the upload live. It is a signal: sent without waiting for Kafka, outside the delivery
promise below, and sent again when an upload is replayed.

The agent on ``photo-deleted`` records each delete in the index, so no later photo matches the
deleted one and the upload is skipped if its event is decided after the delete.

Delivery (at least once, and idempotent, so nothing is lost and nothing doubled downstream):

- Up to ``in_flight`` uploads are prepared at once (fetch, decode, variants) so every core works
  even when one photographer fills one partition. Their decisions, sends and acks then happen
  strictly in offset order per partition: ``streams.ordered`` keeps that order, with no faust in it.
- An input offset is acknowledged only after Kafka acknowledged every event emitted for it and
  every duplicate-table write it caused. Faust only flushes best effort before committing, so
  the agent awaits each delivery itself.
- A failure that is not the input's fault (Kafka refused a send) stops the worker at once, as a
  ``kill -9`` would: the partition's later uploads are not acknowledged, so another worker (or
  this one, restarted) replays them from the last commit.

faust itself loses messages on a takeover in three ways; ``streams.faust_fixes`` explains and
fixes them. One more rule comes from faust: a table write takes its changelog partition from
``current_event()``, so each decision runs in a task started when its own event arrived.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import faust
from faust.types import EventT, StreamT

from photostream.config import KafkaSettings, WorkerSettings
from photostream.logs import upload_context
from photostream.topics import PARTITIONS, VARIANT_MAX_MESSAGE_BYTES
from schemas import topics
from schemas.errors import SerdeError
from schemas.events import ProcessingStarted, UploadDeleted, UploadReceived
from schemas.serde import EventSerde
from schemas.topics import Source
from streams import aiokafka_backoff
from streams.duplicates import DuplicateIndex
from streams.faust_fixes import App, TrackedTable, changelog_sends
from streams.handler import Prepared, UploadHandler
from streams.ordered import OrderedWindow

log = logging.getLogger(__name__)

E = TypeVar("E", UploadReceived, UploadDeleted)

DUPLICATES_TABLE = "duplicates"


def create_app(
    worker: WorkerSettings,
    kafka: KafkaSettings,
    handler: UploadHandler,
    serde: EventSerde,
    *,
    fatal: Callable[[BaseException], None] | None = None,
) -> faust.App:
    """Build the Faust app with its duplicate table and its agent.

    Args:
        worker: The worker's settings.
        kafka: Where the brokers are.
        handler: Prepares and decides each upload.
        serde: Encodes and decodes events.
        fatal: Called when the worker must stop without acknowledging anything more; the default
            exits the process at once.
    """
    fatal = fatal or _exit_now
    aiokafka_backoff.install()  # else a broker outage spins the worker's clients (see the module)
    web: dict[str, Any] = {"web_enabled": False}
    if worker.web_port:
        web = {"web_enabled": True, "web_port": worker.web_port, "web_bind": "127.0.0.1"}
    # A rebalance waits for the uploads in flight; the slowest is an original S3 keeps failing.
    rebalance_timeout = max(60.0, worker.fetch_retry_seconds + 2 * worker.max_decode_seconds)
    app = App(
        worker.app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        Table=TrackedTable,
        topic_partitions=PARTITIONS,
        topic_replication_factor=kafka.replication_factor,
        table_standby_replicas=0 if kafka.replication_factor == 1 else 1,
        broker_session_timeout=worker.session_timeout,
        broker_heartbeat_interval=max(1.0, worker.session_timeout / 4),
        broker_request_timeout=max(90.0, worker.session_timeout * 3),
        broker_rebalance_timeout=rebalance_timeout,
        broker_commit_interval=1.0,
        broker_max_poll_records=max(8, worker.in_flight * 2),
        stream_buffer_maxsize=max(16, worker.in_flight * 4),
        consumer_auto_offset_reset="earliest",
        datadir=str(worker.data_dir),
        producer_request_timeout=60.0,
        producer_max_request_size=VARIANT_MAX_MESSAGE_BYTES,
        **web,
    )
    table = app.Table(DUPLICATES_TABLE, default=None, partitions=PARTITIONS)
    duplicates = DuplicateIndex(table, max_distance=worker.duplicate_distance)

    def raw_topic(name: str) -> faust.TopicT:
        # Keys are photographer ids and values Avro bytes: serde.py does the encoding, not faust.
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    uploads = raw_topic(topics.PHOTO_UPLOADS)
    outputs = {name: raw_topic(name) for name in (topics.PHOTO_VARIANTS, topics.PHOTO_PROCESSED, topics.PHOTO_FAILED)}
    progress = raw_topic(topics.PHOTO_PROCESSING)

    def decoded_as(event: EventT, expected: type[E]) -> E | None:
        """The event's record if it is an ``expected``; else None, logged (nothing to act on without its ids)."""
        source = _source(event)
        try:
            decoded = serde.decode(event.value, source.topic, source.partition, source.offset)
        except SerdeError as error:
            log.error("skipping an undecodable event: %s", error)  # names topic, partition and offset
            return None
        if not isinstance(decoded, expected):
            log.error("skipping a %s on %s at offset %s", type(decoded).__name__, source.topic, source.offset)
            return None
        return decoded

    async def prepare(event: EventT) -> Prepared | None:
        decoded = decoded_as(event, UploadReceived)
        if decoded is None:
            return None
        # Every line logged while this upload is handled names it (tasks started here inherit the
        # ids; the image library's executor threads do not, see photostream.logs).
        with upload_context(upload_id=decoded.upload_id, photographer_id=decoded.photographer_id):
            return await handler.prepare(decoded, _source(event), announce=announce)

    async def announce(started: ProcessingStarted) -> None:
        # A signal for live followers: handed to the producer, never awaited, and never a reason to stop.
        try:
            delivery = await progress.send(
                key=started.photographer_id.encode(), value=serde.encode(started, topics.PHOTO_PROCESSING)
            )
        except Exception:
            log.warning("could not announce that processing started", exc_info=True)
            return
        asyncio.ensure_future(delivery).add_done_callback(_log_undelivered)

    async def decide(event: EventT, prepared: Prepared | None) -> list[Any]:
        sends: list[Any] = []
        if prepared is not None:
            upload = prepared.upload
            with upload_context(upload_id=upload.upload_id, photographer_id=upload.photographer_id):
                changelog_sends.set(sends)
                for output in handler.decide(prepared, _source(event), duplicates):
                    topic = topics.TOPIC_BY_EVENT[type(output)]
                    encoded = serde.encode(output, topic)
                    sends.append(await outputs[topic].send(key=output.photographer_id.encode(), value=encoded))
        return sends

    def stop(error: BaseException) -> None:
        log.critical("stopping: an upload could not be completed, it will be replayed", exc_info=error)
        fatal(error)

    @app.agent(uploads, name="process-uploads")
    async def process_uploads(stream: StreamT) -> None:
        stream = stream.noack()  # type: ignore[attr-defined]  # on Stream, missing from StreamT
        window: OrderedWindow[EventT, Prepared | None] = OrderedWindow(
            worker.in_flight, prepare=prepare, decide=decide, ack=stream.ack, fatal=stop
        )
        async for event in stream.events():
            # Submitted from here, where current_event() is this event: the task started for it
            # copies this context, so its table writes go to this event's changelog partition.
            await window.submit(event.message.tp, event)

    @app.agent(raw_topic(topics.PHOTO_DELETED), name="forget-deleted")
    async def forget_deleted(stream: StreamT) -> None:
        # photo-deleted is keyed and partitioned as photo-uploads, so faust assigns its partition p to
        # the worker that owns uploads' p, and the index's entries of that photographer.
        async for event in stream.events():
            await forget(event)

    async def forget(event: EventT) -> None:
        decoded = decoded_as(event, UploadDeleted)
        if decoded is None:
            return
        sends: list[Any] = []
        changelog_sends.set(sends)
        with upload_context(upload_id=decoded.upload_id, photographer_id=decoded.photographer_id):
            duplicates.forget(
                decoded.photographer_id, decoded.upload_id, sha256=decoded.sha256, deleted_at=decoded.deleted_at
            )
            log.info("forgot deleted upload %s", decoded.upload_id)
        # Acknowledged (on the next event) only once its changelog writes are: a restart still knows.
        for send in sends:
            await send

    return app


def _log_undelivered(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.warning("the processing-started signal was not delivered: %r", delivery.exception())


def _source(event: EventT) -> Source:
    message = event.message
    return Source(message.topic, message.partition, message.offset)


def _exit_now(_error: BaseException) -> None:
    logging.shutdown()
    os._exit(70)
