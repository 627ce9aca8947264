"""Publishing ``UploadReceived`` to Kafka: the gateway's side of the event contract."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from photostream.config import KafkaSettings
from photostream.kafka_producer import EventProducer
from producers.ledger import UploadRecord
from schemas.events import UploadReceived
from schemas.serde import EventSerde
from schemas.topics import PHOTO_UPLOADS


class KafkaUploadEvents:
    """Encodes upload records as ``UploadReceived`` and waits for Kafka's acknowledgement."""

    def __init__(
        self,
        settings: KafkaSettings,
        serde: EventSerde,
        *,
        gateway_id: str,
        bucket: str,
        delivery_timeout: float,
    ) -> None:
        """Open an acks=all idempotent producer."""
        self._producer = EventProducer(settings, delivery_timeout=delivery_timeout, client_id=f"gateway-{gateway_id}")
        self._serde = serde
        self._gateway_id = gateway_id
        self._bucket = bucket

    async def publish(self, record: UploadRecord, *, stored_at: datetime) -> None:
        """Publish the upload, keyed by photographer; raises PublishError if not acknowledged."""
        event = UploadReceived(
            upload_id=uuid.UUID(record.upload_id),
            photographer_id=record.photographer_id,
            filename=record.filename,
            content_type=record.content_type,
            bytes=record.bytes,
            sha256=record.sha256,
            bucket=self._bucket,
            original_key=record.original_key,
            title=record.title,
            tags=tuple(record.tags),
            received_at=datetime.fromisoformat(record.received_at),
            stored_at=stored_at,
            published_at=datetime.now(UTC),
            gateway_id=self._gateway_id,
        )
        await self._producer.send(
            PHOTO_UPLOADS, key=record.photographer_id.encode(), value=self._serde.encode(event, PHOTO_UPLOADS)
        )

    def reachable(self, timeout: float = 3.0) -> bool:
        """Tell whether a broker answers (blocking)."""
        return self._producer.reachable(timeout)

    def close(self) -> None:
        """Deliver what is queued and stop."""
        self._producer.close()
