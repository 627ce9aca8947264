"""The loop every sink runs: consume, add to a batch, flush when full or old, then commit.

A sink says how to take a message (``add``), how to make its batch durable (``flush``) and
which offsets are then safe to commit (``flush`` returns them). The loop guarantees the
order: offsets are committed only after ``flush`` returned. A flush that fails is retried
with backoff: a sink never skips data because S3 or ClickHouse was briefly away.

On a rebalance the partitions' uncommitted work is dropped (``drop``): their new owner
replays it from the last commit, and every sink's writes are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import tenacity
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from photostream.config import KafkaSettings
from schemas.topics import Partition

log = logging.getLogger(__name__)

Offsets = dict[Partition, int]
"""Next offset to read, by (topic, partition)."""


@dataclass(frozen=True, slots=True)
class Received:
    """A consumed message's place and payload (librdkafka types these as optional; here they are set)."""

    topic: str
    partition: int
    offset: int
    value: bytes

    @classmethod
    def of(cls, message: Message) -> Received:
        """Read a message that carries no error."""
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            raise ValueError("a message without a topic, partition or offset")
        return cls(topic, partition, offset, message.value() or b"")

    @property
    def source(self) -> Partition:
        """The (topic, partition) it came from."""
        return self.topic, self.partition


class Sink(Protocol):
    """What a sink implements; the loop calls these from one task, never concurrently."""

    name: str

    def pending(self) -> int:
        """How many messages wait in the current batch."""

    async def add(self, message: Received) -> None:
        """Take one message into the batch (decode it; bad input is logged and skipped)."""

    async def flush(self) -> Offsets:
        """Make the batch durable and return the offsets that are now safe to commit.

        Raises:
            Exception: Anything; the loop retries the flush with backoff and commits nothing.
        """

    def drop(self, partitions: Iterable[Partition]) -> None:
        """Forget uncommitted work of partitions this consumer no longer owns."""


class SinkLoop:
    """Runs one sink over one consumer group until ``stop``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        sink: Sink,
        *,
        group_id: str,
        topics: list[str],
        batch_size: int,
        batch_seconds: float,
        retry_seconds: float,
    ) -> None:
        """Create the loop; nothing connects before ``run``."""
        self._sink = sink
        self._topics = topics
        self._batch_size = batch_size
        self._batch_seconds = batch_seconds
        self._retry_seconds = retry_seconds
        self._consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 10_000,
                "max.poll.interval.ms": int(max(300.0, retry_seconds * 2) * 1000),
            },
            logger=logging.getLogger(f"photostream.kafka.{sink.name}"),
        )
        # librdkafka's consumer is not thread-safe: every call goes through this one thread.
        self._kafka_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{sink.name}-kafka")
        self._revoked: list[Partition] = []
        self._revoked_lock = threading.Lock()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask the loop to finish its batch and return."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until ``stop``; the last batch is flushed and committed before returning."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._kafka_thread, self._subscribe)
        started: float | None = None
        try:
            while not self._stopping.is_set():
                messages = await loop.run_in_executor(self._kafka_thread, self._consume)
                self._forget_revoked()
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("%s: consumer error %s", self._sink.name, error)
                        continue
                    await self._sink.add(Received.of(message))
                    started = started if started is not None else time.monotonic()
                old = started is not None and time.monotonic() - started >= self._batch_seconds
                if self._sink.pending() >= self._batch_size or (old and self._sink.pending()):
                    await self._flush_and_commit()
                    started = None
                elif not self._sink.pending():
                    started = None
            if self._sink.pending():
                await self._flush_and_commit()
        finally:
            await loop.run_in_executor(self._kafka_thread, self._consumer.close)
            self._kafka_thread.shutdown(wait=False)

    async def _flush_and_commit(self) -> None:
        retrying = tenacity.AsyncRetrying(
            wait=tenacity.wait_random_exponential(multiplier=0.5, max=15),
            stop=tenacity.stop_after_delay(self._retry_seconds),
            before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        offsets: Offsets = await retrying(self._sink.flush)
        if offsets:
            commit = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
            await asyncio.get_running_loop().run_in_executor(self._kafka_thread, self._commit, commit)

    def _subscribe(self) -> None:
        self._consumer.subscribe(self._topics, on_revoke=self._on_revoke, on_lost=self._on_revoke)

    def _consume(self) -> list[Message]:
        # consume(n, timeout) waits out its whole timeout unless n messages arrive, which put up to
        # 0.2 s on every event of a quiet stream. poll() returns with the first message; the ones
        # already fetched behind it are taken without waiting.
        first = self._consumer.poll(0.2)
        if first is None:
            return []
        more = self._consumer.consume(num_messages=self._batch_size - 1, timeout=0) if self._batch_size > 1 else []
        return [first, *more]

    def _commit(self, offsets: list[TopicPartition]) -> None:
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # Usually a rebalance took the partitions meanwhile: their new owner replays them.
            log.warning("%s: commit failed (%s); the batch will be replayed", self._sink.name, error)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._revoked_lock:
            self._revoked.extend((tp.topic, tp.partition) for tp in partitions)

    def _forget_revoked(self) -> None:
        with self._revoked_lock:
            revoked, self._revoked = self._revoked, []
        if revoked:
            self._sink.drop(revoked)
