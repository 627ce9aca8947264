"""Kafka producing from asyncio: confluent-kafka with every write acknowledged by all replicas.

``EventProducer.send`` resolves only when the broker has acknowledged the write
(``acks=all``, idempotent producer), so callers answer their clients after the
event is durable. librdkafka's callbacks run on one polling thread and hand their
results to the event loop::

    PublishError          the event was not acknowledged (retriable: the caller
                          may answer 503 and the client try again)
"""

from __future__ import annotations

import asyncio
import logging
import threading

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from photostream.config import KafkaSettings


class PublishError(Exception):
    """Kafka did not acknowledge the event."""

    retriable = True


class EventProducer:
    """An idempotent, acks=all producer whose sends are awaitable."""

    def __init__(self, settings: KafkaSettings, *, delivery_timeout: float, client_id: str = "photostream") -> None:
        """Create the producer and start its polling thread."""
        self._producer = Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                # Java clients and aiokafka hash keys with murmur2: one photographer, one partition, whoever produces.
                "partitioner": "murmur2_random",
                # Past this the write is reported failed instead of retried forever.
                "delivery.timeout.ms": int(delivery_timeout * 1000),
            },
            # librdkafka's own log lines go through logging instead of raw stderr.
            logger=logging.getLogger("photostream.kafka"),
        )
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

    async def send(self, topic: str, *, key: bytes, value: bytes) -> tuple[int, int]:
        """Produce one event and wait for its acknowledgement; returns (partition, offset)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, int]] = loop.create_future()

        def settle(err: KafkaError | None, msg: Message) -> None:
            if done.cancelled():
                return
            if err is not None:
                done.set_exception(PublishError(f"{topic}: {err.str()}"))
            else:
                done.set_result((msg.partition() or 0, msg.offset() or 0))

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(settle, err, msg)

        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                # The local queue is full: let deliveries drain, then try again.
                await asyncio.sleep(0.05)
            except KafkaException as exc:
                raise PublishError(f"{topic}: {exc}") from exc
        return await done

    def reachable(self, timeout: float = 3.0) -> bool:
        """Tell whether a broker answers a metadata request in time (blocking)."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is queued (up to ``timeout``), stop polling; returns events left undelivered."""
        left = self._producer.flush(timeout)
        self._closed.set()
        self._poller.join(timeout=1)
        return left
