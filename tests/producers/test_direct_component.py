"""Direct uploads on in-memory services: what happens when Kafka does not acknowledge the completed file."""

from __future__ import annotations

import hashlib

from photostream.config import GatewaySettings
from photostream.kafka_producer import PublishError
from photostream.objectstore import MemoryObjectStore
from producers.gateway import create_app
from producers.ledger import original_key, pending_key
from tests.gateway_client import MemoryUploadEvents, auth, memory_services
from tests.producers.test_gateway_component import jpeg


async def test_bytes_put_in_place_stay_for_the_retry_when_kafka_does_not_take_the_event(aiohttp_client):
    settings = GatewaySettings(daily_quota=1000, instance_id="component", retry_after_seconds=1)
    store, events = MemoryObjectStore(), MemoryUploadEvents()
    services = memory_services(settings, store=store, events=events)
    client = await aiohttp_client(create_app(settings, services))
    key = await services.keys.create("ph-1")
    photo = jpeg(7, padding=50_000)
    declared = {"filename": "a.jpg", "size": len(photo), "sha256": hashlib.sha256(photo).hexdigest()}
    answer = await (await client.post("/v1/uploads/direct", json=declared, headers=auth(key))).json()
    upload_id = answer["upload_id"]
    assert store.stored(pending_key("ph-1", upload_id))  # marked before any byte could arrive
    await store.put(original_key("ph-1", upload_id), photo, content_type="application/octet-stream")  # the client's PUT

    events.fail_with(PublishError("kafka down"))
    refused = await client.post(f"/v1/uploads/{upload_id}/complete", headers=auth(key))
    assert refused.status == 503
    # Nothing was published, and the client's bytes and their marker stay for the retry (or the sweep).
    assert events.published == []
    assert store.stored(original_key("ph-1", upload_id)).body == photo
    assert store.stored(pending_key("ph-1", upload_id))

    events.fail_with(None)
    done = await client.post(f"/v1/uploads/{upload_id}/complete", headers=auth(key))
    assert done.status == 202, await done.text()
    [event] = events.published
    assert str(event.upload_id) == upload_id
    assert not await store.exists(pending_key("ph-1", upload_id))
