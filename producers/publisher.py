"""Publishing ``UploadReceived`` and ``UploadDeleted`` to Kafka: the gateway's side of the event contract."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from photostream.config import KafkaSettings
from photostream.kafka_producer import EventProducer
from schemas.events import UploadDeleted, UploadReceived
from schemas.serde import EventSerde
from schemas.topics import TOPIC_BY_EVENT


class KafkaUploadEvents:
    """Sends the gateway's events, each to its topic, and waits for Kafka's acknowledgement."""

    def __init__(
        self,
        settings: KafkaSettings,
        serde: EventSerde,
        *,
        gateway_id: str,
        delivery_timeout: float,
    ) -> None:
        """Open an acks=all idempotent producer."""
        self._producer = EventProducer(settings, delivery_timeout=delivery_timeout, client_id=f"gateway-{gateway_id}")
        self._serde = serde

    async def publish(self, event: UploadReceived | UploadDeleted) -> None:
        """Publish the event keyed by photographer (an upload stamped at the send); PublishError if not acknowledged."""
        if isinstance(event, UploadReceived):
            event = dataclasses.replace(event, published_at=datetime.now(UTC))
        topic = TOPIC_BY_EVENT[type(event)]
        await self._producer.send(topic, key=event.photographer_id.encode(), value=self._serde.encode(event, topic))

    def reachable(self, timeout: float = 3.0) -> bool:
        """Tell whether a broker answers (blocking)."""
        return self._producer.reachable(timeout)

    def close(self) -> None:
        """Deliver what is queued and stop."""
        self._producer.close()
