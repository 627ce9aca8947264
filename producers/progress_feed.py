"""What happens to uploads past the gateway, pushed to the clients that follow them.

Each gateway instance reads ``photo-processing``, ``photo-processed``, ``photo-ready``, ``photo-failed``
and ``photo-deleted`` from their ends (every partition assigned, no consumer group: every instance
sees every event, so a client may follow any upload through any instance) on a thread of its
own, and hands each event, as the stages it stands for, to the followers of its upload on the
event loop.

Stages, in order: ``received`` (the gateway accepted it), ``processing`` (a worker started on
it), ``processed`` (metadata read, variants rendered), then ``ready`` (variants stored) or
``failed``; ``deleted`` (its photographer deleted it) ends it at any point. ``processing`` comes from
the worker's ``ProcessingStarted`` as it starts. That signal is best effort, and ``ImageProcessed``
carries when processing started too, so it stands for both stages; each stage reaches a client once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from photostream.config import KafkaSettings
from photostream.warehouse import jsonable
from schemas.errors import SerdeError
from schemas.events import Event, ImageProcessed, ImageReady, ProcessingFailed, ProcessingStarted, UploadDeleted
from schemas.serde import EventSerde
from schemas.topics import PHOTO_DELETED, PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_PROCESSING, PHOTO_READY

log = logging.getLogger(__name__)

FEED_TOPICS = (PHOTO_PROCESSING, PHOTO_PROCESSED, PHOTO_READY, PHOTO_FAILED, PHOTO_DELETED)
STAGES = ("received", "processing", "processed", "ready", "failed", "deleted")
FINAL_STAGES = frozenset({"ready", "failed", "deleted"})
# What of the metadata a ``processed`` stage carries (the status has all of it).
# How many uploads' latest stages the feed keeps for clients that connect just after them.
RECENT_UPLOADS = 10_000
SUMMARY_FIELDS = ("width", "height", "format", "megapixels", "camera_make", "camera_model", "lens", "captured_at")


@dataclass(frozen=True)
class StageEvent:
    """One stage of one upload, as pushed to clients."""

    upload_id: str
    stage: str
    at: str
    details: dict[str, Any] = field(default_factory=dict)
    # The received_at of the upload the stage is of, when its event says: the same photo sent again after a
    # delete has the same id, and its followers must not get the deleted one's stages. Not sent to clients.
    received_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON a client receives."""
        return {"upload_id": self.upload_id, "stage": self.stage, "at": self.at, **self.details}

    def of_upload_received_at(self, received_at: datetime) -> bool:
        """Whether this stage is of the upload received at ``received_at`` (events keep milliseconds)."""
        return self.received_at is None or abs(self.received_at - received_at) <= timedelta(milliseconds=1)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def metadata_summary(metadata: dict[str, Any] | None, duplicate_of: str | None = None) -> dict[str, Any]:
    """The ``processed`` stage's details: a summary of the metadata, and the duplicate's original."""
    details: dict[str, Any] = {"metadata": {name: (metadata or {}).get(name) for name in SUMMARY_FIELDS}}
    if duplicate_of:
        details["duplicate_of"] = duplicate_of
    return details


def stages_of(event: Event) -> list[StageEvent]:
    """The stages an event on the feed's topics stands for."""
    upload_id = str(event.upload_id)
    if isinstance(event, ProcessingStarted):
        return [StageEvent(upload_id, "processing", _iso(event.processing_started_at), received_at=event.received_at)]
    if isinstance(event, ImageProcessed):
        metadata = {name: jsonable(getattr(event.metadata, name)) for name in SUMMARY_FIELDS}
        duplicate_of = str(event.duplicate_of) if event.duplicate_of else None
        summary = metadata_summary(metadata, duplicate_of)
        return [
            StageEvent(upload_id, "processing", _iso(event.processing_started_at), received_at=event.received_at),
            StageEvent(upload_id, "processed", _iso(event.processed_at), summary, received_at=event.received_at),
        ]
    if isinstance(event, ImageReady):
        variants = [
            {"name": v.variant, "format": v.format, "width": v.width, "height": v.height, "bytes": v.bytes}
            for v in event.variants
        ]
        return [StageEvent(upload_id, "ready", _iso(event.ready_at), {"variants": variants}, event.received_at)]
    if isinstance(event, ProcessingFailed):
        error = {"code": str(event.reason), "detail": event.detail, "stage": event.stage}
        return [StageEvent(upload_id, "failed", _iso(event.failed_at), {"error": error}, event.received_at)]
    if isinstance(event, UploadDeleted):
        return [StageEvent(upload_id, "deleted", _iso(event.deleted_at), received_at=event.received_at)]
    return []


class ProgressFeed:
    """Fans the feed's events out to the followers of each upload, on the event loop that started it."""

    def __init__(self, kafka: KafkaSettings, serde: EventSerde | None = None) -> None:
        """Read from ``kafka`` once ``start`` is called."""
        self._kafka = kafka
        self._serde = serde or EventSerde()
        self._followers: dict[str, set[asyncio.Queue[Any]]] = {}
        # The stages read lately, by upload: the status (ClickHouse) is written a moment after the
        # event, so a client connecting in between learns them from here.
        self._recent: OrderedDict[str, list[StageEvent]] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned = threading.Event()

    async def start(self) -> None:
        """Start reading at the topics' ends; returns once every partition is assigned."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="progress-feed", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._assigned.wait, 30)

    async def stop(self) -> None:
        """Stop reading."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    @contextlib.contextmanager
    def follow(self, upload_ids: set[str]) -> Iterator[asyncio.Queue[StageEvent]]:
        """A queue that gets every stage of these uploads from now on, until the block ends."""
        queue: asyncio.Queue[StageEvent] = asyncio.Queue()
        for upload_id in upload_ids:
            self.add(queue, upload_id)
        try:
            yield queue
        finally:
            self.drop(queue, upload_ids)

    def add(self, queue: asyncio.Queue[Any], upload_id: str) -> None:
        """Send ``upload_id``'s stages to ``queue`` too (a WebSocket subscribing to more); see ``drop``."""
        self._followers.setdefault(upload_id, set()).add(queue)

    def drop(self, queue: asyncio.Queue[Any], upload_ids: set[str]) -> None:
        """Stop sending these uploads' stages to ``queue``."""
        for upload_id in upload_ids:
            followers = self._followers.get(upload_id, set())
            followers.discard(queue)
            if not followers:
                self._followers.pop(upload_id, None)

    def recent(self, upload_id: str) -> list[StageEvent]:
        """The stages of ``upload_id`` this feed read lately (the newest ``RECENT_UPLOADS`` uploads')."""
        return list(self._recent.get(upload_id, ()))

    def _deliver(self, stages: list[StageEvent]) -> None:
        for stage in stages:
            self._recent.setdefault(stage.upload_id, []).append(stage)
            self._recent.move_to_end(stage.upload_id)
            if len(self._recent) > RECENT_UPLOADS:
                self._recent.popitem(last=False)
            for queue in self._followers.get(stage.upload_id, ()):
                queue.put_nowait(stage)

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self._kafka.bootstrap_servers,
                "group.id": f"photostream-gateway-feed-{uuid.uuid4().hex}",  # never joined: partitions are assigned
                "enable.auto.commit": False,
                # The broker answers a fetch as soon as any byte arrives (fetch.min.bytes=1), so the
                # wait bounds only empty fetches: a short one does not hear events sooner, it polls
                # the broker (50 ms cost it about 1.5 % of a core per gateway, idle or not).
                "fetch.wait.max.ms": 500,
            }
        )

    def _run(self) -> None:
        consumer = None
        while not self._stopping.is_set():
            try:
                consumer = consumer or self._assign(self._consumer())
                message = consumer.poll(0.2)
            except KafkaException as exc:
                log.warning("the progress feed cannot read Kafka: %s; trying again", exc)
                self._stopping.wait(2)
                continue
            if message is None or message.error() is not None:
                continue
            value, topic = message.value(), message.topic()
            if value is None or topic is None:
                continue
            try:
                event = self._serde.decode(value, topic, message.partition(), message.offset())
            except SerdeError as exc:
                log.warning("the progress feed skips an undecodable message: %s", exc)
                continue
            stages = stages_of(event)
            if stages and self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._deliver, stages)
        if consumer is not None:
            consumer.close()

    def _assign(self, consumer: Consumer) -> Consumer:
        metadata = consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, partition, OFFSET_END)
            for topic in FEED_TOPICS
            for partition in metadata.topics[topic].partitions
        ]
        consumer.assign(partitions)
        self._assigned.set()
        return consumer
