"""DELETE /v1/uploads/{id} at the gateway, against the real Kafka and S3 (the pipeline's side: tests/integration)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest

from photostream.config import GatewaySettings
from photostream.deletions import read_tombstone
from photostream.kafka_producer import PublishError
from photostream.layout import variant_key
from producers.gateway import create_app
from producers.ledger import original_key
from schemas.events import UploadDeleted
from schemas.topics import PHOTO_DELETED
from tests.gateway_client import WrappedEvents, auth, form
from tests.producers.test_gateway import noisy_jpeg, problem
from tests.streams.workers import OutputReader

pytestmark = pytest.mark.integration


@pytest.fixture
def settings():
    return GatewaySettings(max_file_bytes=30 * 1024 * 1024, daily_quota=1000)


async def uploaded(client, key: str, photo: bytes, name: str = "a.jpg") -> dict:
    response = await client.post("/v1/uploads", data=form((name, photo)), headers=auth(key))
    assert response.status == 202, await response.text()
    [entry] = (await response.json())["uploads"]
    return entry


async def test_a_delete_removes_the_upload_its_objects_and_tells_kafka(client, photographer, local_stack):
    name, key = photographer
    deletes = OutputReader(local_stack.kafka, [PHOTO_DELETED])
    photo = noisy_jpeg(6)  # over one S3 part: the original came through a multipart upload
    upload_id = (await uploaded(client, key, photo))["upload_id"]
    store = client.services.store
    record = await client.services.ledger.find(upload_id)
    # A variant the S3 sink had stored already.
    variant = variant_key(name, uuid.UUID(upload_id), datetime.fromisoformat(record.received_at), "thumb", "webp")
    await store.put(variant, b"variant", content_type="image/webp")

    response = await client.delete(f"/v1/uploads/{upload_id}", headers=auth(key))
    assert response.status == 204, await response.text()
    assert not await store.exists(original_key(name, upload_id))
    assert not await store.exists(variant)
    await problem(await client.get(f"/v1/uploads/{upload_id}", headers=auth(key)), 404)
    assert deletes.poll_until(lambda reader: reader.of(PHOTO_DELETED, {name}), timeout=20)
    [event] = deletes.of(PHOTO_DELETED, {name})
    deletes.close()
    assert isinstance(event, UploadDeleted)
    assert (str(event.upload_id), event.sha256, event.original_key) == (upload_id, record.sha256, record.original_key)
    # The record's time to the microsecond, the event's to the millisecond (Avro).
    assert abs(event.received_at - datetime.fromisoformat(record.received_at)) < timedelta(milliseconds=1)
    tombstone = await read_tombstone(store, upload_id)
    assert tombstone is not None
    assert tombstone.deletes(event.received_at)


async def test_a_delete_is_idempotent_and_only_the_owner_may_delete(client, photographer, unique_name):
    _, key = photographer
    other_key = await client.services.keys.create(unique_name("ph"))
    upload_id = (await uploaded(client, key, noisy_jpeg(0.2)))["upload_id"]
    await problem(await client.delete(f"/v1/uploads/{upload_id}", headers=auth(other_key)), 404)
    assert await client.services.ledger.find(upload_id) is not None, "another photographer's delete changed nothing"
    for _ in range(2):
        response = await client.delete(f"/v1/uploads/{upload_id}", headers=auth(key))
        assert response.status == 204, await response.text()
    await problem(await client.delete(f"/v1/uploads/{upload_id}", headers=auth(other_key)), 404)
    await problem(await client.delete(f"/v1/uploads/{uuid.uuid4()}", headers=auth(key)), 404)
    await problem(await client.delete("/v1/uploads/not-an-id", headers=auth(key)), 404)
    await problem(await client.delete(f"/v1/uploads/{upload_id}"), 401)


async def test_the_same_photo_uploaded_after_its_delete_is_a_new_upload(client, photographer, local_stack):
    name, key = photographer
    photo = noisy_jpeg(0.3)
    first = await uploaded(client, key, photo)
    before = await client.services.ledger.find(first["upload_id"])
    assert (await client.delete(f"/v1/uploads/{first['upload_id']}", headers=auth(key))).status == 204
    again = await uploaded(client, key, photo, name="b.jpg")
    assert again["upload_id"] == first["upload_id"], "the id is the content's"
    assert "existing" not in again, "created afresh, not answered as the deleted one"
    after = await client.services.ledger.find(again["upload_id"])
    assert after.received_at > before.received_at
    assert after.filename == "b.jpg"
    assert await client.services.store.get(original_key(name, again["upload_id"])) == photo
    status = await client.get(again["status_url"], headers=auth(key))
    assert status.status == 200
    tombstone = await read_tombstone(client.services.store, again["upload_id"])
    assert not tombstone.deletes(datetime.fromisoformat(after.received_at)), "the new upload is not deleted"


class RefusingDeletes(WrappedEvents):
    """The real publisher, except that no ``UploadDeleted`` is acknowledged."""

    async def publish(self, event) -> None:
        if isinstance(event, UploadDeleted):
            await asyncio.sleep(0)
            raise PublishError("photo-deleted: not acknowledged (test)")
        await self.inner.publish(event)


async def test_a_delete_kafka_did_not_take_keeps_the_upload_for_the_retry(
    aiohttp_client, client, photographer, settings
):
    name, key = photographer
    upload_id = (await uploaded(client, key, noisy_jpeg(0.2)))["upload_id"]
    services = dataclasses.replace(client.services, events=RefusingDeletes(client.services.events))
    refusing = await aiohttp_client(create_app(settings, services))
    body = await problem(await refusing.delete(f"/v1/uploads/{upload_id}", headers=auth(key)), 503)
    assert "photo-deleted" in body["detail"]
    assert (await client.get(f"/v1/uploads/{upload_id}", headers=auth(key))).status == 200
    assert await client.services.store.exists(original_key(name, upload_id)), "nothing removed before Kafka took it"
    assert (await client.delete(f"/v1/uploads/{upload_id}", headers=auth(key))).status == 204
    assert not await client.services.store.exists(original_key(name, upload_id))
