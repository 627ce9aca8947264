"""The gateway's HTTP contract, against the real Kafka and S3 of the local stack."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
import uuid
from datetime import datetime

import aiohttp
import fastavro
import pytest
from confluent_kafka import Consumer, TopicPartition
from PIL import Image

from photostream.clients import s3_client
from photostream.config import GatewaySettings, KafkaSettings, S3Settings
from photostream.kafka_producer import PublishError
from photostream.objectstore import STAGING_PREFIX, ObjectStore, StoreUnavailable
from photostream.topics import ensure_topics
from photostream.warehouse import QueryUnavailable
from producers.gateway import create_app
from producers.ledger import UploadLedger, original_key, pending_key, upload_id_for
from producers.status import Progress
from schemas.events import ImageReady
from schemas.serde import EventSerde
from schemas.topics import EVENT_BY_TOPIC, PHOTO_READY, SUBSCRIBABLE_TOPICS
from schemas.topics import PHOTO_UPLOADS as UPLOADS
from tests.gateway_client import WrappedEvents, auth, form, gateway_services
from tests.schemas.samples import make_events

pytestmark = pytest.mark.integration


def jpeg(width=64, height=48, color=(200, 30, 30), quality=90) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def noisy_jpeg(megabytes: float) -> bytes:
    """A JPEG of roughly the given size (random pixels compress badly)."""
    side = int((megabytes * 1024 * 1024 / 1.6) ** 0.5)
    image = Image.frombytes("RGB", (side, side), __import__("os").urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


@pytest.fixture(scope="module")
def topics(local_stack):
    ensure_topics(local_stack.kafka)


@pytest.fixture
def settings():
    return GatewaySettings(max_file_bytes=8 * 1024 * 1024, daily_quota=1000, part_bytes=5 * 1024 * 1024)


@pytest.fixture
async def api_key(client, unique_name):
    return await client.services.keys.create(unique_name("ph"))


def replace(settings: GatewaySettings, **changes) -> GatewaySettings:
    return settings.model_copy(update=changes)


async def problem(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def consume_uploads(bootstrap: str, photographer_id: str, expected: int, timeout: float = 20) -> list:
    """Every UploadReceived of one photographer on photo-uploads, decoded with the shipped schemas."""
    serde = EventSerde()
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    metadata = consumer.list_topics(UPLOADS, timeout=10)
    consumer.assign([TopicPartition(UPLOADS, p, 0) for p in metadata.topics[UPLOADS].partitions])
    events = []
    try:
        import time

        deadline = time.monotonic() + timeout
        idle_after_expected = 0
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                if len(events) >= expected:
                    idle_after_expected += 1
                    if idle_after_expected > 3:
                        break
                continue
            assert message.error() is None, message.error()
            if message.key().decode() != photographer_id:
                continue
            events.append(serde.decode(message.value(), UPLOADS, message.partition(), message.offset()))
    finally:
        consumer.close()
    return events


# -- 202 and the event ---------------------------------------------------------------


async def test_single_upload_is_stored_published_and_queued(client, api_key, local_stack):
    photo = jpeg()
    response = await client.post(
        "/v1/uploads",
        data=form(("../../etc/passwd.jpg", photo), title="Sunset", tags="sea, sky,,"),
        headers=auth(api_key),
    )
    assert response.status == 202, await response.text()
    [item] = (await response.json())["uploads"]
    assert item["status"] == "queued"
    assert item["filename"] == "passwd.jpg"
    assert item["status_url"] == f"/v1/uploads/{item['upload_id']}"

    record = await client.services.keys.lookup(api_key)
    events = consume_uploads(local_stack.kafka.bootstrap_servers, record.photographer_id, expected=1)
    assert len(events) == 1
    event = events[0]
    assert str(event.upload_id) == item["upload_id"]
    assert event.sha256 == hashlib.sha256(photo).hexdigest()
    assert event.content_type == "image/jpeg"
    assert event.title == "Sunset"
    assert list(event.tags) == ["sea", "sky"]
    assert event.received_at <= event.stored_at <= event.published_at

    stored = await client.services.store.get(event.original_key)
    assert stored == photo
    assert event.original_key.startswith(f"originals/{record.photographer_id}/")
    assert "passwd" not in event.original_key

    status = await client.get(item["status_url"], headers=auth(api_key))
    assert status.status == 200
    body = await status.json()
    assert body["status"] == "queued"
    assert body["photographer_id"] == record.photographer_id
    assert body["filename"] == "passwd.jpg"


async def test_large_file_goes_up_in_parts(make_client, settings, api_key, local_stack):
    client = await make_client(replace(settings, max_file_bytes=30 * 1024 * 1024))
    photo = noisy_jpeg(16)
    size = len(photo)
    assert size > 2 * settings.part_bytes
    response = await client.post("/v1/uploads", data=form(("big.jpg", photo)), headers=auth(api_key))
    assert response.status == 202, await response.text()
    record = await client.services.keys.lookup(api_key)
    [event] = consume_uploads(local_stack.kafka.bootstrap_servers, record.photographer_id, expected=1)
    assert event.bytes == size
    stored_hash = hashlib.sha256(await client.services.store.get(event.original_key)).hexdigest()
    assert stored_hash == event.sha256 == hashlib.sha256(photo).hexdigest()


async def test_same_content_again_returns_the_same_upload(client, api_key, local_stack):
    photo = jpeg(color=(1, 2, 3))
    first = await (await client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(api_key))).json()
    again = await client.post("/v1/uploads", data=form(("renamed.jpg", photo)), headers=auth(api_key))
    assert again.status == 202
    second = await again.json()
    assert second["uploads"][0]["upload_id"] == first["uploads"][0]["upload_id"]
    assert second["uploads"][0]["status"] == "queued"

    record = await client.services.keys.lookup(api_key)
    events = consume_uploads(local_stack.kafka.bootstrap_servers, record.photographer_id, expected=1)
    assert len(events) == 1, "a retry must not create a second image"
    originals = await client.services.store.count(f"originals/{record.photographer_id}/")
    assert originals == 1


async def test_same_content_for_another_photographer_is_another_image(client, api_key, unique_name):
    other = await client.services.keys.create(unique_name("ph"))
    photo = jpeg(color=(9, 9, 9))
    mine = await (await client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(api_key))).json()
    theirs = await (await client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(other))).json()
    assert mine["uploads"][0]["upload_id"] != theirs["uploads"][0]["upload_id"]


async def test_batch_with_a_bad_file_accepts_the_others(client, api_key, local_stack):
    response = await client.post(
        "/v1/uploads",
        data=form(
            ("one.jpg", jpeg(color=(5, 5, 5))), ("notes.jpg", b"just some text, not a photo"), ("two.png", _png())
        ),
        headers=auth(api_key),
    )
    assert response.status == 207, await response.text()
    results = (await response.json())["uploads"]
    assert [r["status"] for r in results] == ["queued", "rejected", "queued"]
    assert results[1]["problem"]["status"] == 415
    record = await client.services.keys.lookup(api_key)
    assert len(consume_uploads(local_stack.kafka.bootstrap_servers, record.photographer_id, expected=2)) == 2


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (10, 10), (0, 255, 0, 128)).save(out, format="PNG")
    return out.getvalue()


async def test_batch_all_accepted_is_202(client, api_key):
    files = [(f"f{i}.jpg", jpeg(color=(40 * i, 100, 200))) for i in range(5)]
    response = await client.post("/v1/uploads", data=form(*files), headers=auth(api_key))
    assert response.status == 202
    assert len({r["upload_id"] for r in (await response.json())["uploads"]}) == 5


# -- errors --------------------------------------------------------------------------


async def test_missing_and_unknown_keys_are_401(client):
    body = await problem(await client.post("/v1/uploads", data=form(("a.jpg", jpeg()))), 401)
    assert "Bearer" in body["detail"]
    await problem(await client.post("/v1/uploads", data=form(("a.jpg", jpeg())), headers=auth("psk_nope")), 401)
    await problem(await client.get(f"/v1/uploads/{uuid.uuid4()}", headers=auth("psk_nope")), 401)


async def test_not_multipart_or_no_file_is_400(client, api_key):
    await problem(await client.post("/v1/uploads", json={"file": "x"}, headers=auth(api_key)), 400)
    data = aiohttp.FormData()
    data.add_field("title", "no file here")
    data.add_field("other", b"x", filename="x.bin")
    await problem(await client.post("/v1/uploads", data=data, headers=auth(api_key)), 400)
    broken = await client.post(
        "/v1/uploads",
        data=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',  # never closed
        headers={**auth(api_key), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status == 400


async def test_a_flood_of_parts_is_refused_whole(client, api_key):
    data = aiohttp.FormData()
    data.add_field("file", io.BytesIO(jpeg(color=(1, 2, 3))), filename="a.jpg", content_type="image/jpeg")
    for index in range(5000):  # far past 10 x the files a request may upload
        data.add_field(f"junk{index}", "x")
    body = await problem(await client.post("/v1/uploads", data=data, headers=auth(api_key)), 400)
    assert "parts" in body["detail"]


async def test_file_over_the_limit_is_413(make_client, settings, api_key):
    client = await make_client(replace(settings, max_file_bytes=200_000))
    body = await problem(
        await client.post("/v1/uploads", data=form(("big.jpg", noisy_jpeg(0.5))), headers=auth(api_key)), 413
    )
    assert body["uploads"][0]["status"] == "rejected"


async def test_not_an_image_is_415_whatever_the_name_or_header(client, api_key):
    data = aiohttp.FormData()
    data.add_field("file", b"GIF-looking name, text inside" * 10, filename="photo.gif", content_type="image/gif")
    body = await problem(await client.post("/v1/uploads", data=data, headers=auth(api_key)), 415)
    assert "'photo.gif' is not JPEG, PNG, WebP, TIFF, GIF or HEIC/HEIF" in body["detail"]


async def test_over_the_daily_quota_is_429_with_retry_after(make_client, settings, api_key):
    client = await make_client(replace(settings, daily_quota=2))
    for i in range(2):
        ok = await client.post("/v1/uploads", data=form(("q.jpg", jpeg(color=(i, i, 7)))), headers=auth(api_key))
        assert ok.status == 202
    over = await client.post("/v1/uploads", data=form(("q.jpg", jpeg(color=(3, 3, 7)))), headers=auth(api_key))
    await problem(over, 429)
    assert 0 < int(over.headers["Retry-After"]) <= 86400


async def test_a_client_that_stalls_is_cut_off_with_408(make_client, settings, api_key):
    client = await make_client(replace(settings, read_timeout=1.0))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = (
        "POST /v1/uploads HTTP/1.1\r\n"
        f"Host: {client.server.host}\r\n"
        f"Authorization: Bearer {api_key}\r\n"
        "Content-Type: multipart/form-data; boundary=stall\r\n"
        "Content-Length: 1000000\r\n\r\n"
        '--stall\r\nContent-Disposition: form-data; name="file"; filename="slow.jpg"\r\n\r\n'
    )
    writer.write(head.encode() + jpeg()[:100])  # then nothing more
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    writer.close()
    assert b" 408 " in status_line


async def test_kafka_down_is_503_with_retry_after(make_client, settings, api_key):
    dead_kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    client = await make_client(replace(settings, kafka_delivery_timeout=2), kafka=dead_kafka)
    # The key store is in S3, which is up: only the publish fails.
    response = await client.post("/v1/uploads", data=form(("k.jpg", jpeg(color=(4, 4, 4)))), headers=auth(api_key))
    await problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"] == {"s3": "ok", "kafka": "unreachable"}


async def test_s3_down_is_503_with_retry_after(make_client, settings):
    dead_s3 = S3Settings(endpoint_url="http://127.0.0.1:1")
    client = await make_client(settings, s3=dead_s3)
    response = await client.post("/v1/uploads", data=form(("s.jpg", jpeg())), headers=auth("psk_" + "x" * 43))
    await problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    ready = await client.get("/readyz")
    assert ready.status == 503


async def test_another_photographers_upload_is_404_like_a_missing_one(client, api_key, unique_name):
    other = await client.services.keys.create(unique_name("ph"))
    created = await (
        await client.post("/v1/uploads", data=form(("m.jpg", jpeg(color=(8, 1, 1)))), headers=auth(api_key))
    ).json()
    upload_id = created["uploads"][0]["upload_id"]
    theirs = await problem(await client.get(f"/v1/uploads/{upload_id}", headers=auth(other)), 404)
    missing = await problem(await client.get(f"/v1/uploads/{uuid.uuid4()}", headers=auth(other)), 404)
    assert theirs["title"] == missing["title"]
    await problem(await client.get("/v1/uploads/not-a-uuid", headers=auth(api_key)), 404)


class FixedStatus:
    """A status source that answers the same progress for every upload (or fails)."""

    def __init__(self, progress: Progress | None = None, error: Exception | None = None) -> None:
        self.progress_value, self.error, self.asked = progress, error, []

    async def progress(self, upload_id: str, photographer_id: str, received_at: datetime | None = None) -> Progress:
        self.asked.append((upload_id, photographer_id, received_at))
        if self.error is not None:
            raise self.error
        return self.progress_value

    async def close(self) -> None:
        pass


async def _status_client(aiohttp_client, local_stack, settings, status):
    services = gateway_services(local_stack.kafka, local_stack.s3, settings, status=status)
    client = await aiohttp_client(create_app(settings, services))
    client.services = services
    return client


async def test_completed_status_shows_metadata_and_expiring_variant_urls(
    aiohttp_client, local_stack, settings, topics, unique_name
):
    variant = {
        "name": "web",
        "format": "webp",
        "width": 640,
        "height": 480,
        "bytes": 1234,
        "key": "derivatives/x/web.webp",
    }
    status = FixedStatus(Progress("completed", metadata={"width": 640}, variants=[variant], duplicate_of="abc"))
    client = await _status_client(aiohttp_client, local_stack, settings, status)
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    created = await (
        await client.post("/v1/uploads", data=form(("s.jpg", jpeg(color=(3, 9, 1)))), headers=auth(key))
    ).json()
    upload_id = created["uploads"][0]["upload_id"]
    body = await (await client.get(f"/v1/uploads/{upload_id}", headers=auth(key))).json()
    # The status is asked for the day the upload was received, as its event says.
    assert status.asked == [(upload_id, photographer, datetime.fromisoformat(body["received_at"]))]
    assert body["status"] == "completed"
    assert body["metadata"] == {"width": 640}
    assert body["duplicate_of"] == "abc"
    (shown,) = body["variants"]
    assert "key" not in shown
    fields = ("name", "format", "width", "height", "bytes")
    assert {k: shown[k] for k in fields} == {k: variant[k] for k in fields}
    assert "derivatives/x/web.webp" in shown["url"]
    assert f"X-Amz-Expires={settings.presigned_url_seconds}" in shown["url"]


async def test_failed_status_shows_the_error(aiohttp_client, local_stack, settings, topics, unique_name):
    error = {"code": "corrupt", "detail": "premature end", "stage": "processing"}
    client = await _status_client(aiohttp_client, local_stack, settings, FixedStatus(Progress("failed", error=error)))
    key = await client.services.keys.create(unique_name("ph"))
    created = await (
        await client.post("/v1/uploads", data=form(("f.jpg", jpeg(color=(3, 9, 2)))), headers=auth(key))
    ).json()
    body = await (await client.get(f"/v1/uploads/{created['uploads'][0]['upload_id']}", headers=auth(key))).json()
    assert (body["status"], body["error"]) == ("failed", error)
    assert "variants" not in body


async def test_status_store_down_is_503_with_retry_after(aiohttp_client, local_stack, settings, topics, unique_name):
    status = FixedStatus(error=QueryUnavailable("no answer"))
    client = await _status_client(aiohttp_client, local_stack, settings, status)
    key = await client.services.keys.create(unique_name("ph"))
    created = await (
        await client.post("/v1/uploads", data=form(("d.jpg", jpeg(color=(3, 9, 3)))), headers=auth(key))
    ).json()
    response = await client.get(f"/v1/uploads/{created['uploads'][0]['upload_id']}", headers=auth(key))
    await problem(response, 503)
    assert response.headers["Retry-After"] == str(settings.retry_after_seconds)


# -- the schema store ----------------------------------------------------------------


async def test_subscribers_fetch_a_writer_schema_by_the_fingerprint_in_an_event(client):
    listing = await client.get("/v1/schemas")  # no key: schemas are the public contract
    assert listing.status == 200
    topics = (await listing.json())["topics"]
    serde = EventSerde()
    assert [t["topic"] for t in topics] == list(SUBSCRIBABLE_TOPICS)
    for topic in topics:
        current = serde.schema_for(EVENT_BY_TOPIC[topic["topic"]])
        assert (topic["event"], topic["fingerprint"]) == (current.name, current.fingerprint.hex())
        assert topic["versions"][0]["version"] == 1
        assert topic["versions"][-1]["fingerprint"] == current.fingerprint.hex()

    # A subscriber with no copy of the schema reads an event with what the gateway serves.
    ready = next(event for event in make_events(full=True) if isinstance(event, ImageReady))
    value = serde.encode(ready, PHOTO_READY)
    response = await client.get(f"/v1/schemas/{value[2:10].hex()}")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    writer = fastavro.parse_schema(json.loads(await response.text()), {})
    decoded = fastavro.schemaless_reader(io.BytesIO(value[10:]), writer, None)
    assert (decoded["event_id"], decoded["upload_id"]) == (ready.event_id, ready.upload_id)


async def test_an_unknown_or_malformed_fingerprint_is_a_clear_problem(client):
    unknown = await client.get("/v1/schemas/0123456789abcdef")
    assert unknown.status == 404
    assert "0123456789abcdef" in (await unknown.json())["detail"]
    malformed = await client.get("/v1/schemas/ImageReady")
    assert malformed.status == 400
    assert malformed.headers["Content-Type"] == "application/problem+json"
    assert "16 hex digits" in (await malformed.json())["detail"]


# -- health and metrics --------------------------------------------------------------


async def test_health_ready_and_metrics(client, api_key):
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"s3": "ok", "kafka": "ok"}
    await client.post("/v1/uploads", data=form(("x.jpg", b"not an image at all")), headers=auth(api_key))
    await client.post("/v1/uploads", data=form(("y.jpg", jpeg(color=(50, 60, 70)))), headers=auth(api_key))
    text = await (await client.get("/metrics")).text()
    assert 'photostream_gateway_requests_total{method="POST",route="/v1/uploads",status="415"} 1.0' in text
    assert 'photostream_gateway_rejections_total{reason="unsupported-media-type"}' in text
    assert "photostream_gateway_upload_bytes_total" in text
    assert 'photostream_gateway_request_seconds_count{route="/v1/uploads"} 2.0' in text


# -- no original left behind, none stored twice ------------------------------------------


async def originals_of(store, photographer: str) -> tuple[list[str], list[str], list[str]]:
    """The photographer's objects under originals/ and incoming/, and multipart uploads still open there."""
    staging = f"{STAGING_PREFIX}{photographer}/"
    uploads = s3_client(store.settings).list_multipart_uploads(Bucket=store.bucket, Prefix=staging)
    open_uploads = [upload["Key"] for upload in uploads.get("Uploads", [])]
    return await store.list_keys(f"originals/{photographer}/"), await store.list_keys(staging), open_uploads


@pytest.fixture
async def dead_kafka_client(make_client, settings):
    """A gateway whose Kafka never answers: every publish fails after 2 s."""
    dead = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    return await make_client(replace(settings, kafka_delivery_timeout=2), kafka=dead)


@pytest.mark.parametrize("megabytes", [0, 6], ids=["in-memory", "spooled"])
async def test_a_failed_publish_deletes_the_original_and_the_retry_stores_one(
    make_client, settings, dead_kafka_client, unique_name, megabytes
):
    client = await make_client(replace(settings, max_file_bytes=30 * 1024 * 1024))
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    photo = noisy_jpeg(megabytes) if megabytes else jpeg(color=(7, 1, 9))
    upload_id = upload_id_for(photographer, hashlib.sha256(photo).hexdigest())
    store = client.services.store

    failed = await dead_kafka_client.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key))
    await problem(failed, 503)
    assert await originals_of(store, photographer) == ([], [], []), "nothing of the failed upload stays"

    retried = await client.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key))
    assert retried.status == 202, await retried.text()
    assert (await retried.json())["uploads"][0]["upload_id"] == upload_id
    assert await originals_of(store, photographer) == ([original_key(photographer, upload_id)], [], [])
    assert await store.get(original_key(photographer, upload_id)) == photo


async def test_an_acknowledged_upload_sent_again_while_kafka_fails_keeps_its_original(
    client, dead_kafka_client, unique_name
):
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    acknowledged, new = jpeg(color=(2, 7, 1)), jpeg(color=(200, 70, 10))
    first = await client.post("/v1/uploads", data=form(("a.jpg", acknowledged)), headers=auth(key))
    assert first.status == 202, await first.text()
    upload_id = (await first.json())["uploads"][0]["upload_id"]
    kept = original_key(photographer, upload_id)

    # Alone, it is answered from the record: nothing to publish, so Kafka's failure does not matter.
    again = await dead_kafka_client.post("/v1/uploads", data=form(("a.jpg", acknowledged)), headers=auth(key))
    assert again.status == 202, await again.text()
    assert (await again.json())["uploads"][0]["existing"] is True
    # Beside a new photo whose publish fails: the request fails, the new original goes, the old one stays.
    both = await dead_kafka_client.post(
        "/v1/uploads", data=form(("a.jpg", acknowledged), ("b.jpg", new)), headers=auth(key)
    )
    await problem(both, 503)
    store = client.services.store
    assert await originals_of(store, photographer) == ([kept], [], [])
    assert await store.get(kept) == acknowledged


class UndeletableStore(ObjectStore):
    """S3 that stores and reads but fails every delete, as when it goes away right after the upload."""

    async def delete(self, key: str) -> None:
        raise StoreUnavailable("S3 unreachable (test)")


async def test_an_original_that_could_not_be_deleted_is_reused_by_the_retry(
    aiohttp_client, make_client, settings, local_stack, unique_name
):
    client = await make_client(settings)
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    dead_kafka = replace(settings, kafka_delivery_timeout=2)
    real = gateway_services(KafkaSettings(bootstrap_servers="127.0.0.1:1"), local_stack.s3, dead_kafka)
    broken = await aiohttp_client(
        create_app(dead_kafka, dataclasses.replace(real, store=UndeletableStore(local_stack.s3)))
    )
    photo = jpeg(color=(4, 9, 4))
    upload_id = upload_id_for(photographer, hashlib.sha256(photo).hexdigest())
    try:
        await problem(await broken.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key)), 503)
    finally:
        await real.store.close()
    store = client.services.store
    left = original_key(photographer, upload_id)
    marker = pending_key(photographer, upload_id)
    assert await originals_of(store, photographer) == ([left], [marker], []), "it stays at its key, and its marker"

    retried = await client.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key))
    assert retried.status == 202, await retried.text()
    assert await originals_of(store, photographer) == ([left], [], []), "the retry wrote the same key, acknowledged"


class GatedEvents(WrappedEvents):
    """The real publisher, except that ``fail.jpg`` waits at a gate, then is never acknowledged."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.waiting, self.gate = asyncio.Event(), asyncio.Event()

    async def publish(self, event) -> None:
        if event.filename == "fail.jpg":
            self.waiting.set()
            await self.gate.wait()
            raise PublishError("photo-uploads: not acknowledged (test)")
        await self.inner.publish(event)


class CountingStore(ObjectStore):
    """S3 that tells when ``key`` has been written ``times`` times."""

    def __init__(self, settings, key: str, times: int) -> None:
        super().__init__(settings)
        self.key, self.times, self.written = key, times, asyncio.Event()

    async def put(self, key: str, body: bytes | bytearray, **options) -> str:
        etag = await super().put(key, body, **options)
        if key == self.key:
            self.times -= 1
            if self.times <= 0:
                self.written.set()
        return etag


async def twin_gateway(aiohttp_client, settings, local_stack, photographer: str, photo: bytes, wrap):
    """A gateway on the real stack for two requests carrying ``photo``: its publisher is ``wrap(the real one)``,
    its store tells when the photo's original was written twice (both requests hold it).

    Returns:
        The test client, the real services, the wrapped publisher, the store, and the photographer's key.
    """
    kept = original_key(photographer, upload_id_for(photographer, hashlib.sha256(photo).hexdigest()))
    real = gateway_services(local_stack.kafka, local_stack.s3, settings)
    events, store = wrap(real.events), CountingStore(local_stack.s3, kept, times=2)
    client = await aiohttp_client(create_app(settings, dataclasses.replace(real, events=events, store=store)))
    return client, real, events, store, await real.keys.create(photographer)


async def test_a_failed_request_never_deletes_the_original_a_concurrent_one_publishes(
    aiohttp_client, settings, local_stack, topics, unique_name
):
    photographer = unique_name("ph")
    photo = jpeg(color=(6, 6, 1))  # the same bytes under two names: one upload id, one key
    client, real, events, store, key = await twin_gateway(
        aiohttp_client, settings, local_stack, photographer, photo, GatedEvents
    )
    kept = store.key

    failing = asyncio.create_task(client.post("/v1/uploads", data=form(("fail.jpg", photo)), headers=auth(key)))
    await asyncio.wait_for(events.waiting.wait(), 30)  # stored, its event on the way
    ok = asyncio.create_task(client.post("/v1/uploads", data=form(("ok.jpg", photo)), headers=auth(key)))
    await asyncio.wait_for(store.written.wait(), 30)  # the second request holds the original too
    events.gate.set()
    await problem(await failing, 503)
    assert (await ok).status == 202, "the second request publishes once the first failed"
    assert await originals_of(real.store, photographer) == ([kept], [], [])
    assert await real.store.get(kept) == photo


class HeldEvents(WrappedEvents):
    """The real publisher, whose first send waits until ``release`` is set."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.release, self.sent = asyncio.Event(), 0

    async def publish(self, event) -> None:
        self.sent += 1
        if self.sent == 1:
            await self.release.wait()
        await self.inner.publish(event)


async def test_the_same_photo_in_two_requests_at_once_is_published_once(
    aiohttp_client, settings, local_stack, topics, unique_name
):
    # A client's retry of a request still in flight, or the same file twice in a folder sent in parallel:
    # both requests find no record when they admit the photo, and both store it.
    photographer = unique_name("ph")
    photo = jpeg(color=(7, 3, 3))
    client, real, events, store, key = await twin_gateway(
        aiohttp_client, settings, local_stack, photographer, photo, HeldEvents
    )
    kept = store.key

    first = asyncio.create_task(client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(key)))
    second = asyncio.create_task(client.post("/v1/uploads", data=form(("copy-of-a.jpg", photo)), headers=auth(key)))
    await asyncio.wait_for(store.written.wait(), 30)  # both admitted and stored before any event went out
    events.release.set()
    answers = [(await (await request).json())["uploads"][0] for request in (first, second)]
    assert len({answer["upload_id"] for answer in answers}) == 1
    assert sorted(bool(answer.get("existing")) for answer in answers) == [False, True]
    [event] = consume_uploads(local_stack.kafka.bootstrap_servers, photographer, expected=1)
    assert str(event.upload_id) == answers[0]["upload_id"]
    assert await originals_of(real.store, photographer) == ([kept], [], [])


class LateLedger(UploadLedger):
    """The real ledger, whose second ``find`` reads the record, then answers only once ``answer`` is set."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.finds, self.read, self.answer = 0, asyncio.Event(), asyncio.Event()

    async def find(self, upload_id: str):
        self.finds += 1
        found = await super().find(upload_id)
        if self.finds == 2:
            self.read.set()
            await self.answer.wait()
        return found


async def test_a_twin_that_found_no_record_before_the_first_ended_is_not_published_again(
    aiohttp_client, settings, local_stack, topics, unique_name
):
    # The same file twice in a folder sent in parallel, the second a little later: it reads no record while
    # the first is publishing, and stores and publishes once the first request has ended and let go of it.
    photographer = unique_name("ph")
    photo = jpeg(color=(2, 8, 5))
    real = gateway_services(local_stack.kafka, local_stack.s3, settings)
    events, ledger = HeldEvents(real.events), LateLedger(real.store)
    client = await aiohttp_client(create_app(settings, dataclasses.replace(real, events=events, ledger=ledger)))
    key = await real.keys.create(photographer)

    first = asyncio.create_task(client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(key)))
    while events.sent == 0:  # the first is publishing
        await asyncio.sleep(0.01)
    second = asyncio.create_task(client.post("/v1/uploads", data=form(("copy-of-a.jpg", photo)), headers=auth(key)))
    await asyncio.wait_for(ledger.read.wait(), 30)  # the second read no record
    events.release.set()
    assert (await first).status == 202  # published, saved, and the original let go
    ledger.answer.set()
    answers = [(await (await request).json())["uploads"][0] for request in (first, second)]
    assert answers[1]["upload_id"] == answers[0]["upload_id"]
    assert [bool(answer.get("existing")) for answer in answers] == [False, True]
    [event] = consume_uploads(local_stack.kafka.bootstrap_servers, photographer, expected=1)
    assert str(event.upload_id) == answers[0]["upload_id"]
