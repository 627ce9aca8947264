"""Helpers to drive the real gateway in process (aiohttp test client), on the local stack or in memory."""

from __future__ import annotations

import asyncio
import io

import aiohttp

from photostream.config import GatewaySettings, KafkaSettings, S3Settings
from photostream.kafka_producer import PublishError
from photostream.objectstore import MemoryObjectStore, ObjectStore
from producers.dashboard import Dashboard
from producers.gateway import Services
from producers.keys import S3KeyStore
from producers.ledger import UploadLedger
from producers.progress_feed import ProgressFeed
from producers.publisher import KafkaUploadEvents
from producers.status import StatusSource
from schemas.events import UploadDeleted, UploadReceived
from schemas.serde import EventSerde


def gateway_services(
    kafka: KafkaSettings,
    s3: S3Settings,
    settings: GatewaySettings,
    *,
    status: StatusSource | None = None,
    dashboard: Dashboard | None = None,
    feed: ProgressFeed | None = None,
) -> Services:
    """The gateway's real adapters, with the quota read fresh on every request."""
    store = ObjectStore(s3)
    return Services(
        store=store,
        keys=S3KeyStore(store, unknown_cache_seconds=settings.unknown_key_cache_seconds),
        ledger=UploadLedger(store, quota_cache_seconds=0),
        events=KafkaUploadEvents(
            kafka,
            EventSerde(),
            gateway_id=settings.instance_id,
            delivery_timeout=settings.kafka_delivery_timeout,
        ),
        status=status,
        dashboard=dashboard,
        feed=feed,
    )


class MemoryUploadEvents:
    """The gateway's events port (``producers.gateway.UploadEvents``) in memory, for component tests.

    It records what it is asked to publish, or fails as an unacknowledged Kafka send does. It stays
    here, not beside ``KafkaUploadEvents``: a gateway whose events go nowhere would answer 202 for
    uploads nothing ever processes, so nothing but a test should run one.
    """

    def __init__(self) -> None:
        self.published: list[UploadReceived | UploadDeleted] = []
        self.failure: PublishError | None = None
        self.closed = False

    def fail_with(self, error: PublishError | None) -> None:
        """Fail every publish with ``error`` (and answer unreachable) until called with None."""
        self.failure = error

    async def publish(self, event: UploadReceived | UploadDeleted) -> None:
        await asyncio.sleep(0)  # a send is never synchronous
        if self.failure is not None:
            raise self.failure.with_traceback(None)
        self.published.append(event)

    def reachable(self, timeout: float = 3.0) -> bool:
        return self.failure is None

    def close(self) -> None:
        self.closed = True


class WrappedEvents:
    """A publisher that passes everything to ``inner``; tests override ``publish`` to gate or refuse sends."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def publish(self, event) -> None:
        await self.inner.publish(event)

    def reachable(self, timeout: float = 3.0) -> bool:
        return self.inner.reachable(timeout)

    def close(self) -> None:
        self.inner.close()


def memory_services(
    settings: GatewaySettings,
    *,
    store: MemoryObjectStore | None = None,
    events: MemoryUploadEvents | None = None,
    status: StatusSource | None = None,
) -> Services:
    """The gateway's services with no server: the real key store and ledger on the memory store."""
    store = store or MemoryObjectStore()
    return Services(
        store=store,
        keys=S3KeyStore(store, unknown_cache_seconds=settings.unknown_key_cache_seconds),
        ledger=UploadLedger(store, quota_cache_seconds=0),
        events=events or MemoryUploadEvents(),
        status=status,
    )


def form(*files: tuple[str, bytes], title: str | None = None, tags: str | None = None) -> aiohttp.FormData:
    """A multipart body with one ``file`` part per (name, bytes), as curl and browsers send it."""
    # quote_fields=False sends names as curl and browsers do, not percent-encoded.
    data = aiohttp.FormData(quote_fields=False)
    for name, body in files:
        data.add_field("file", io.BytesIO(body), filename=name, content_type="application/octet-stream")
    if title is not None:
        data.add_field("title", title)
    if tags is not None:
        data.add_field("tags", tags)
    return data


def auth(key: str) -> dict[str, str]:
    """The Authorization header for an API key."""
    return {"Authorization": f"Bearer {key}"}
