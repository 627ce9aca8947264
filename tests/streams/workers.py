"""Run real ``photostream worker`` processes against the local stack, and read what they emit."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from photostream.config import KafkaSettings, S3Settings
from schemas.events import Event
from schemas.serde import EventSerde
from schemas.topics import PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_UPLOADS, PHOTO_VARIANTS
from tests.processes import ServiceProcess, start_service

OUTPUT_TOPICS = (PHOTO_VARIANTS, PHOTO_PROCESSED, PHOTO_FAILED)


def end_offset(consumer: Consumer, topic: str, partition: int, timeout: float = 30) -> int:
    """The partition's end offset, waiting out a topic just created (no leader yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def start_group_at_end(kafka: KafkaSettings, group: str, topic: str = PHOTO_UPLOADS) -> list[TopicPartition]:
    """Commit the current end of ``topic`` for a new consumer group, so it skips earlier tests' events.

    Returns:
        The offsets committed, for ``commit_offsets`` to rewind the group to later.
    """
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [TopicPartition(topic, partition, end_offset(consumer, topic, partition)) for partition in partitions]
    finally:
        consumer.close()
    commit_offsets(kafka, group, ends)
    return ends


def commit_offsets(kafka: KafkaSettings, group: str, offsets: list[TopicPartition], timeout: float = 60) -> None:
    """Set a consumer group's committed offsets (the group must have no running member).

    A fresh broker has no group coordinator until ``__consumer_offsets`` exists: retried until then.
    """
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def uncommitted(kafka: KafkaSettings, group: str, topic: str = PHOTO_UPLOADS) -> int:
    """Messages of ``topic`` the group has not committed yet: its lag (readable while the group runs)."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(
            max(0, end_offset(consumer, topic, tp.partition) - max(tp.offset, 0)) for tp in committed if tp.offset >= 0
        )
    finally:
        consumer.close()


def delete_group_topics(kafka: KafkaSettings, group: str) -> None:
    """Delete the changelog topics a worker group created (best effort)."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(f"{group}-")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=10).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=10)


@dataclass
class WorkerGroup:
    """Workers sharing one app id (consumer group and duplicate table), started on demand."""

    kafka: KafkaSettings
    s3: S3Settings
    app_id: str
    directory: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[ServiceProcess] = field(default_factory=list)

    def start(self) -> ServiceProcess:
        """Start one more worker."""
        index = len(self.workers)
        env = {
            **os.environ,
            **self.kafka.environment(),  # the brokers, and the replicas of the topics it creates
            "S3_ENDPOINT_URL": self.s3.endpoint_url,
            "WORKER_APP_ID": self.app_id,
            "WORKER_DATA_DIR": str(self.directory / f"worker-{index}"),
            "WORKER_SESSION_TIMEOUT": "6",
            **self.extra_env,
        }
        worker = start_service(["worker", "--loglevel", "info"], env, self.directory / f"worker-{index}.log")
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        """Stop every worker still running."""
        for worker in self.workers:
            worker.stop()

    def logs(self) -> str:
        """Every worker's log, for failure messages."""
        return "\n".join(f"--- {w.log.name}\n{w.output()[-6000:]}" for w in self.workers)


class OutputReader:
    """Reads the workers' output topics from their current end, decoding with the shipped schemas."""

    def __init__(self, kafka: KafkaSettings, topics: Iterable[str] = OUTPUT_TOPICS) -> None:
        """Open the reader at the current end of each topic, so only what follows is seen."""
        self.serde = EventSerde()
        self.consumer = Consumer(
            {"bootstrap.servers": kafka.bootstrap_servers, "group.id": "unused", "enable.auto.commit": False},
            # librdkafka's own lines (a broker restarting in a fault test) go to logging, not stderr.
            logger=logging.getLogger("tests.kafka"),
        )
        assignment = []
        for topic in topics:
            for partition in self.consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                assignment.append(TopicPartition(topic, partition, end_offset(self.consumer, topic, partition)))
        self.consumer.assign(assignment)
        self.events: dict[str, list[Event]] = defaultdict(list)
        self.keys: dict[str, list[str]] = defaultdict(list)

    def poll_until(self, done, timeout: float) -> bool:
        """Read until ``done(self)`` is true or ``timeout`` seconds pass; returns whether it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self):
                return True
            for message in self.consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                topic = message.topic()
                event = self.serde.decode(message.value(), topic, message.partition(), message.offset())
                self.events[topic].append(event)
                self.keys[topic].append(message.key().decode())
        return done(self)

    def of(self, topic: str, photographers: set[str]) -> list[Event]:
        """The events read from ``topic`` for these photographers."""
        return [event for event in self.events[topic] if event.photographer_id in photographers]

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()
