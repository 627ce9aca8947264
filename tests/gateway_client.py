"""Helpers to drive the real gateway in process (aiohttp test client) against the local stack."""

from __future__ import annotations

import io

import aiohttp

from photostream.config import GatewaySettings, KafkaSettings, S3Settings
from photostream.objectstore import ObjectStore
from producers.dashboard import Dashboard
from producers.events import KafkaUploadEvents
from producers.gateway import Services
from producers.keys import S3KeyStore
from producers.ledger import UploadLedger
from producers.status import StatusSource
from schemas.serde import EventSerde


def gateway_services(
    kafka: KafkaSettings,
    s3: S3Settings,
    settings: GatewaySettings,
    *,
    status: StatusSource | None = None,
    dashboard: Dashboard | None = None,
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
            bucket=s3.bucket,
            delivery_timeout=settings.kafka_delivery_timeout,
        ),
        status=status,
        dashboard=dashboard,
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
