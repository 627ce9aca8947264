"""tus on in-memory services: what happens when Kafka does not acknowledge the finished file."""

from __future__ import annotations

import io

import pytest

from photostream.config import GatewaySettings
from photostream.kafka_producer import PublishError
from photostream.objectstore import MemoryObjectStore
from producers.gateway import create_app
from producers.ledger import original_key
from producers.tus import TUS_PREFIX
from tests.gateway_client import MemoryUploadEvents, auth, memory_services
from tests.producers.test_gateway_component import jpeg

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
async def gateway(aiohttp_client):
    settings = GatewaySettings(daily_quota=1000, instance_id="component", retry_after_seconds=1)
    store, events = MemoryObjectStore(), MemoryUploadEvents()
    services = memory_services(settings, store=store, events=events)
    client = await aiohttp_client(create_app(settings, services))
    client.store, client.events = store, events
    client.key = await services.keys.create("ph-1")
    return client


async def test_a_file_kafka_did_not_take_is_accepted_by_the_next_head(gateway):
    photo = jpeg(1, padding=100_000)
    headers = {**TUS, **auth(gateway.key)}
    created = await gateway.post("/v1/tus/", headers={**headers, "Upload-Length": str(len(photo))})
    url = created.headers["Location"]
    gateway.events.fail_with(PublishError("kafka down"))
    last = await gateway.patch(
        url,
        data=io.BytesIO(photo),
        headers={**headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert last.status == 503, await last.text()
    assert last.headers["Retry-After"] == "1"
    # Every byte is there; a tus client asks HEAD, sees the whole length, and sends nothing more.
    still_down = await gateway.head(url, headers=headers)
    assert still_down.status == 503
    assert gateway.events.published == []
    assert await gateway.store.list_keys("originals/") == []  # the copy was discarded

    gateway.events.fail_with(None)
    healed = await gateway.head(url, headers=headers)
    assert healed.status == 200
    assert healed.headers["Upload-Offset"] == str(len(photo))
    upload_id = healed.headers["Photostream-Upload-Id"]
    [event] = gateway.events.published
    assert str(event.upload_id) == upload_id
    assert gateway.store.stored(original_key("ph-1", upload_id)).body == photo
    # Asked again, it answers the same image and publishes nothing more.
    again = await gateway.head(url, headers=headers)
    assert again.headers["Photostream-Upload-Id"] == upload_id
    assert len(gateway.events.published) == 1
    assert await gateway.store.list_keys(TUS_PREFIX) == [f"{TUS_PREFIX}ph-1/{url.rsplit('/', 1)[1]}.info"]
