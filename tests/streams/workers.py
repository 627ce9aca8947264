"""Run real ``photostream worker`` processes against the local stack, and read what they emit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
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


def start_group_at_end(kafka: KafkaSettings, group: str, topic: str = PHOTO_UPLOADS) -> None:
    """Commit the current end of ``topic`` for a new consumer group, so it skips earlier tests' events."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = []
        for partition in partitions:
            ends.append(TopicPartition(topic, partition, end_offset(consumer, topic, partition)))
        consumer.commit(offsets=ends, asynchronous=False)
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
class WorkerProcess:
    """One ``photostream worker`` child process and its log file."""

    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Stop it gracefully, then kill it if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        """What it logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class WorkerGroup:
    """Workers sharing one app id (consumer group and duplicate table), started on demand."""

    kafka: KafkaSettings
    s3: S3Settings
    app_id: str
    directory: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(self) -> WorkerProcess:
        """Start one more worker."""
        index = len(self.workers)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "S3_ENDPOINT_URL": self.s3.endpoint_url,
            "WORKER_APP_ID": self.app_id,
            "WORKER_DATA_DIR": str(self.directory / f"worker-{index}"),
            "WORKER_SESSION_TIMEOUT": "6",
            **self.extra_env,
        }
        log = self.directory / f"worker-{index}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "photostream", "worker", "--loglevel", "info"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(process, log)
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
            {"bootstrap.servers": kafka.bootstrap_servers, "group.id": "unused", "enable.auto.commit": False}
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
