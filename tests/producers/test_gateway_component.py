"""The gateway's HTTP contract in aiohttp's test client, with no server behind it.

The real app (``create_app``), the real key store and ledger, on the memory object store and an
in-memory events port: auth, quota, multipart parsing, 207 answers, problem bodies and dependency
failures, each in a few milliseconds. ``test_gateway.py`` runs the same contract on the real
Kafka and S3.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import uuid

import aiohttp
import pytest
from PIL import Image

from photostream.config import GatewaySettings
from photostream.kafka_producer import PublishError
from photostream.objectstore import STAGING_PREFIX, MemoryObjectStore, StoreUnavailable
from producers.gateway import create_app
from producers.ledger import original_key, pending_key, upload_id_for
from tests.gateway_client import MemoryUploadEvents, auth, form, memory_services

ACCEPTED = "JPEG, PNG, WebP, TIFF, GIF or HEIC/HEIF"


def jpeg(n: int, *, padding: int = 0) -> bytes:
    """A small JPEG of its own for each ``n``; ``padding`` random bytes after it make it larger."""
    out = io.BytesIO()
    Image.frombytes("RGB", (16, 12), random.Random(n).randbytes(16 * 12 * 3)).save(out, format="JPEG")
    return out.getvalue() + os.urandom(padding)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 255, 0, 128)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def make_client(aiohttp_client):
    """A gateway on fresh in-memory services; settings changed by keyword."""

    async def make(*, store: MemoryObjectStore | None = None, events: MemoryUploadEvents | None = None, **changes):
        settings = GatewaySettings(**{"daily_quota": 1000, "instance_id": "component", **changes})
        services = memory_services(settings, store=store, events=events)
        client = await aiohttp_client(create_app(settings, services))
        client.settings, client.services = settings, services
        return client

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture
async def key(client) -> str:
    return await client.services.keys.create("alice")


async def problem(response, status: int) -> dict:
    """The response's RFC 9457 body, after checking its status, media type and standard members."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{body['code']}"
    assert body["title"]
    assert body["detail"]
    return body


async def left_behind(store: MemoryObjectStore, photographer: str) -> tuple[list[str], list[str], list[str]]:
    """The photographer's originals, staged objects and multipart uploads still open."""
    staging = f"{STAGING_PREFIX}{photographer}/"
    return (
        await store.list_keys(f"originals/{photographer}/"),
        await store.list_keys(staging),
        store.open_uploads(staging),
    )


# -- auth ----------------------------------------------------------------------------


async def test_a_missing_key_is_401_with_a_bearer_challenge(client):
    response = await client.post("/v1/uploads", data=form(("a.jpg", jpeg(1))))
    body = await problem(response, 401)
    assert "Bearer" in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await client.services.store.list_keys("originals/") == []


@pytest.mark.parametrize("sent", ["psk_" + "u" * 43, "not-even-a-psk-key", "psk_" + "x" * 200])
async def test_an_unknown_key_is_401(client, sent):
    body = await problem(await client.post("/v1/uploads", data=form(("a.jpg", jpeg(1))), headers=auth(sent)), 401)
    assert body["detail"] == "the API key is not known"
    await problem(await client.get(f"/v1/uploads/{uuid.uuid4()}", headers=auth(sent)), 401)


async def test_a_valid_key_stores_publishes_and_reports_the_upload(client, key):
    photo = jpeg(2)
    response = await client.post(
        "/v1/uploads", data=form(("../dir/sunset.jpg", photo), title="Sunset", tags="sea, sky,,"), headers=auth(key)
    )
    assert response.status == 202, await response.text()
    [item] = (await response.json())["uploads"]
    upload_id = upload_id_for("alice", hashlib.sha256(photo).hexdigest())
    assert item == {
        "upload_id": upload_id,
        "filename": "sunset.jpg",
        "status": "queued",
        "status_url": f"/v1/uploads/{upload_id}",
    }
    [event] = client.services.events.published
    assert (str(event.upload_id), event.photographer_id, event.content_type) == (upload_id, "alice", "image/jpeg")
    assert (event.title, event.tags, event.bytes) == ("Sunset", ("sea", "sky"), len(photo))
    assert event.received_at <= event.stored_at
    assert (event.bucket, event.original_key) == (client.services.store.bucket, original_key("alice", upload_id))
    assert await client.services.store.get(original_key("alice", upload_id)) == photo
    assert client.services.store.stored(original_key("alice", upload_id)).content_type == "image/jpeg"

    status = await client.get(item["status_url"], headers=auth(key))
    assert status.status == 200
    assert (await status.json())["status"] == "queued"


async def test_repeated_401s_from_one_address_get_429_but_a_known_key_still_works(make_client):
    client = await make_client(auth_failure_limit=3)
    known = await client.services.keys.create("alice")
    unseen = await client.services.keys.create("bob")
    assert (await client.post("/v1/uploads", data=form(("a.jpg", jpeg(3))), headers=auth(known))).status == 202
    bad = auth("psk_" + "g" * 43)
    for _ in range(3):
        await problem(await client.post("/v1/uploads", data=form(("b.jpg", jpeg(4))), headers=bad), 401)

    blocked = await client.post("/v1/uploads", data=form(("b.jpg", jpeg(4))), headers=bad)
    body = await problem(blocked, 429)
    assert body["code"] == "too-many-auth-failures"
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    # A key this process saw valid still gets in from that address; one it has not seen does not.
    assert (await client.post("/v1/uploads", data=form(("c.jpg", jpeg(5))), headers=auth(known))).status == 202
    await problem(await client.post("/v1/uploads", data=form(("d.jpg", jpeg(6))), headers=auth(unseen)), 429)


# -- quota ---------------------------------------------------------------------------


async def test_a_request_past_the_daily_quota_is_429_with_retry_after(make_client):
    client = await make_client(daily_quota=2)
    key = await client.services.keys.create("alice")
    for n in range(2):
        assert (await client.post("/v1/uploads", data=form(("q.jpg", jpeg(n))), headers=auth(key))).status == 202
    over = await client.post("/v1/uploads", data=form(("q.jpg", jpeg(9))), headers=auth(key))
    body = await problem(over, 429)
    assert body["code"] == "quota-exceeded"
    assert 0 < int(over.headers["Retry-After"]) <= 86400
    assert len(await client.services.store.list_keys("originals/alice/")) == 2


async def test_files_past_the_quota_are_429_problems_inside_a_207(make_client):
    client = await make_client(daily_quota=2)
    key = await client.services.keys.create("alice")
    response = await client.post(
        "/v1/uploads", data=form(("a.jpg", jpeg(1)), ("b.jpg", jpeg(2)), ("c.jpg", jpeg(3))), headers=auth(key)
    )
    assert response.status == 207, await response.text()
    assert 0 < int(response.headers["Retry-After"]) <= 86400
    results = (await response.json())["uploads"]
    assert [r["status"] for r in results] == ["queued", "queued", "rejected"]
    assert (results[2]["filename"], results[2]["problem"]["status"]) == ("c.jpg", 429)
    assert results[2]["problem"]["code"] == "quota-exceeded"
    assert len(client.services.events.published) == 2


async def test_concurrent_requests_never_take_more_than_the_quota(make_client):
    client = await make_client(daily_quota=3)
    key = await client.services.keys.create("alice")
    responses = await asyncio.gather(
        *(client.post("/v1/uploads", data=form((f"{n}.jpg", jpeg(n))), headers=auth(key)) for n in range(8))
    )
    statuses = sorted(response.status for response in responses)
    assert statuses == [202] * 3 + [429] * 5
    assert len(client.services.events.published) == 3
    assert len(await client.services.store.list_keys("originals/alice/")) == 3
    assert await client.services.ledger.accepted_today("alice") == 3


# -- multipart parsing -----------------------------------------------------------------


async def test_a_body_with_no_file_part_is_400(client, key):
    await problem(await client.post("/v1/uploads", json={"file": "x"}, headers=auth(key)), 400)
    data = aiohttp.FormData()
    data.add_field("title", "no file here")
    data.add_field("other", b"x", filename="x.bin")
    body = await problem(await client.post("/v1/uploads", data=data, headers=auth(key)), 400)
    assert "no `file` part" in body["detail"]


async def test_a_malformed_body_is_400_and_leaves_nothing(client, key):
    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    response = await client.post(
        "/v1/uploads",
        data=head + jpeg(1),  # the part is never closed
        headers={**auth(key), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    body = await problem(response, 400)
    assert "malformed" in body["detail"]
    assert await left_behind(client.services.store, "alice") == ([], [], [])
    assert client.services.events.published == []


async def test_files_past_the_per_request_limit_are_413_each(make_client):
    client = await make_client(max_files_per_request=2)
    key = await client.services.keys.create("alice")
    files = [(f"{n}.jpg", jpeg(n)) for n in range(3)]
    response = await client.post("/v1/uploads", data=form(*files), headers=auth(key))
    assert response.status == 207, await response.text()
    results = (await response.json())["uploads"]
    assert [r["status"] for r in results] == ["queued", "queued", "rejected"]
    assert results[2]["problem"]["code"] == "too-many-files"
    assert results[2]["problem"]["status"] == 413


@pytest.mark.parametrize("padding", [300_000, 7 * 1024 * 1024], ids=["one-put", "multipart"])
async def test_a_file_over_the_limit_is_413_and_its_parts_are_dropped(make_client, padding):
    client = await make_client(max_file_bytes=padding - 1000)
    key = await client.services.keys.create("alice")
    response = await client.post("/v1/uploads", data=form(("big.jpg", jpeg(1, padding=padding))), headers=auth(key))
    body = await problem(response, 413)
    assert body["code"] == "file-too-large"
    assert body["uploads"][0]["status"] == "rejected"
    assert await left_behind(client.services.store, "alice") == ([], [], [])


async def test_a_file_that_is_not_an_image_is_415_naming_the_accepted_formats(client, key):
    data = aiohttp.FormData()
    data.add_field("file", b"GIF-looking name, text inside" * 10, filename="photo.gif", content_type="image/gif")
    body = await problem(await client.post("/v1/uploads", data=data, headers=auth(key)), 415)
    assert body["code"] == "unsupported-media-type"
    assert f"'photo.gif' is not {ACCEPTED}" in body["detail"]


# -- 207 and existing photos -----------------------------------------------------------


async def test_a_batch_mixing_accepted_and_rejected_files_is_207(client, key):
    files = [("one.jpg", jpeg(1)), ("notes.jpg", b"just some text, not a photo"), ("two.png", png()), ("e.jpg", b"")]
    response = await client.post("/v1/uploads", data=form(*files), headers=auth(key))
    assert response.status == 207, await response.text()
    assert "Retry-After" not in response.headers
    results = (await response.json())["uploads"]
    assert [r["status"] for r in results] == ["queued", "rejected", "queued", "rejected"]
    rejected = [r["problem"] for r in results if r["status"] == "rejected"]
    assert [(p["code"], p["status"]) for p in rejected] == [("unsupported-media-type", 415), ("empty-file", 400)]
    assert [event.filename for event in client.services.events.published] == ["one.jpg", "two.png"]
    assert len(await client.services.store.list_keys("originals/alice/")) == 2


async def test_every_file_rejected_is_one_problem_listing_them(client, key):
    files = [("a.txt", b"text, not a photo"), ("b.txt", b"more text, not a photo")]
    body = await problem(await client.post("/v1/uploads", data=form(*files), headers=auth(key)), 415)
    assert body["code"] == "all-files-rejected"
    assert [r["problem"]["status"] for r in body["uploads"]] == [415, 415]


async def test_a_photo_sent_again_is_the_existing_upload_stored_once(client, key):
    photo = jpeg(7)
    first = await client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(key))
    upload_id = (await first.json())["uploads"][0]["upload_id"]
    assert "existing" not in (await first.json())["uploads"][0]

    again = await client.post("/v1/uploads", data=form(("renamed.jpg", photo)), headers=auth(key))
    assert again.status == 202
    [item] = (await again.json())["uploads"]
    assert (item["upload_id"], item["status"], item["existing"]) == (upload_id, "queued", True)
    twice = await client.post("/v1/uploads", data=form(("x.jpg", jpeg(8)), ("y.jpg", jpeg(8))), headers=auth(key))
    assert [r.get("existing", False) for r in (await twice.json())["uploads"]] == [False, True]

    assert len(client.services.events.published) == 2
    assert len(await client.services.store.list_keys("originals/alice/")) == 2
    assert await client.services.ledger.accepted_today("alice") == 2


# -- problem bodies ------------------------------------------------------------------


async def test_another_photographers_upload_is_404_like_a_missing_one(client, key):
    other = await client.services.keys.create("bob")
    created = await client.post("/v1/uploads", data=form(("m.jpg", jpeg(1))), headers=auth(key))
    upload_id = (await created.json())["uploads"][0]["upload_id"]
    theirs = await problem(await client.get(f"/v1/uploads/{upload_id}", headers=auth(other)), 404)
    missing = await problem(await client.get(f"/v1/uploads/{uuid.uuid4()}", headers=auth(other)), 404)
    assert (theirs["title"], theirs["code"]) == (missing["title"], missing["code"]) == ("Not found", "not-found")
    await problem(await client.get("/v1/uploads/not-a-uuid", headers=auth(key)), 404)


async def test_an_unknown_route_or_method_is_a_problem_too(client):
    body = await problem(await client.get("/v2/nothing"), 404)
    assert body["code"] == "not-found"
    await problem(await client.put("/v1/uploads"), 405)


# -- dependencies failing ----------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 6 * 1024 * 1024], ids=["one-put", "multipart"])
async def test_kafka_failing_is_503_with_retry_after_and_the_original_deleted(make_client, padding):
    client = await make_client(max_file_bytes=20 * 1024 * 1024)
    key = await client.services.keys.create("alice")
    photo = jpeg(1, padding=padding)
    client.services.events.fail_with(PublishError("photo-uploads: not acknowledged (test)"))
    failed = await client.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key))
    body = await problem(failed, 503)
    assert body["code"] == "unavailable"
    assert failed.headers["Retry-After"] == str(client.settings.retry_after_seconds)
    store = client.services.store
    assert await left_behind(store, "alice") == ([], [], []), "nothing of the failed upload stays"
    assert await store.list_keys("uploads/") == []
    assert await client.services.ledger.accepted_today("alice") == 0, "its quota slot was given back"

    client.services.events.fail_with(None)
    retried = await client.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key))
    assert retried.status == 202, await retried.text()
    kept = original_key("alice", upload_id_for("alice", hashlib.sha256(photo).hexdigest()))
    assert await left_behind(store, "alice") == ([kept], [], [])
    assert await store.get(kept) == photo


async def test_an_original_that_cannot_be_deleted_stays_at_its_key_for_the_retry(client, key):
    photo = jpeg(2)
    upload_id = upload_id_for("alice", hashlib.sha256(photo).hexdigest())
    kept = original_key("alice", upload_id)
    client.services.events.fail_with(PublishError("not acknowledged (test)"))
    client.services.store.fail_with(StoreUnavailable("S3 unreachable (test)"), "delete")
    await problem(await client.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key)), 503)
    # Its pending marker stays too: if the client never retries, the staging sweep deletes both.
    assert await left_behind(client.services.store, "alice") == ([kept], [pending_key("alice", upload_id)], [])

    client.services.events.fail_with(None)
    client.services.store.fail_with(None)
    assert (await client.post("/v1/uploads", data=form(("p.jpg", photo)), headers=auth(key))).status == 202
    assert await left_behind(client.services.store, "alice") == ([kept], [], []), "the retry wrote the same key"


async def test_s3_down_is_503_with_retry_after(client, key):
    client.services.store.fail_with(StoreUnavailable("S3 unreachable (test)"))
    response = await client.post("/v1/uploads", data=form(("s.jpg", jpeg(1))), headers=auth(key))
    await problem(response, 503)
    assert response.headers["Retry-After"] == str(client.settings.retry_after_seconds)
    assert client.services.events.published == []


async def test_readiness_names_the_dependency_that_does_not_answer(client):
    assert (await (await client.get("/readyz")).json())["checks"] == {"s3": "ok", "kafka": "ok"}
    client.services.store.fail_with(StoreUnavailable("S3 unreachable (test)"), "ping")
    body = await problem(await client.get("/readyz"), 503)
    assert body["checks"] == {"s3": "unreachable", "kafka": "ok"}
    client.services.store.fail_with(None)
    client.services.events.fail_with(PublishError("down (test)"))
    assert (await problem(await client.get("/readyz"), 503))["checks"] == {"s3": "ok", "kafka": "unreachable"}
    assert (await client.get("/healthz")).status == 200
