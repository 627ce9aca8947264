"""Publishing ``UploadReceived`` to Kafka: the gateway's side of the event contract."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from photostream.config import KafkaSettings
from photostream.kafka_producer import EventProducer
from schemas.events import UploadReceived
from schemas.serde import EventSerde
from schemas.topics import PHOTO_UPLOADS


class KafkaUploadEvents:
    """Sends ``UploadReceived`` and waits for Kafka's acknowledgement."""

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

    async def publish(self, event: UploadReceived) -> None:
        """Publish the upload, keyed by photographer, stamped with its send time; PublishError if not acknowledged."""
        sent = dataclasses.replace(event, published_at=datetime.now(UTC))
        await self._producer.send(
            PHOTO_UPLOADS, key=sent.photographer_id.encode(), value=self._serde.encode(sent, PHOTO_UPLOADS)
        )

    def reachable(self, timeout: float = 3.0) -> bool:
        """Tell whether a broker answers (blocking)."""
        return self._producer.reachable(timeout)

    def close(self) -> None:
        """Deliver what is queued and stop."""
        self._producer.close()
