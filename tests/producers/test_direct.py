"""Direct uploads to S3 (POST /v1/uploads/direct, then /complete), against the real Kafka and S3."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest
from click.testing import CliRunner

from photostream.cli import main
from photostream.config import GatewaySettings
from photostream.objectstore import STAGING_PREFIX
from producers.ledger import original_key, pending_key
from tests.gateway_client import auth, form
from tests.producers.test_gateway import consume_uploads, noisy_jpeg, problem

pytestmark = pytest.mark.integration

PART = 5 * 1024 * 1024


@pytest.fixture
def settings():
    return GatewaySettings(max_file_bytes=30 * 1024 * 1024, daily_quota=1000)


def declaration(data: bytes, filename: str = "DSC_0001.JPG", **extra) -> dict:
    return {"filename": filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}


async def declare(client, key: str, body: dict, status: int = 201) -> dict:
    response = await client.post("/v1/uploads/direct", json=body, headers=auth(key))
    assert response.status == status, await response.text()
    return await response.json()


def put(url: str, data: bytes, headers: dict[str, str]) -> httpx.Response:
    """What the client does with the answer: the bytes straight to S3, with the headers it was given."""
    return httpx.put(url, content=data, headers=headers, timeout=60)


async def staged(client, name: str) -> list[str]:
    return [key for key in await client.services.store.list_keys(f"{STAGING_PREFIX}{name}/") if ".direct" in key]


async def test_a_file_put_to_its_url_and_completed_is_accepted_like_a_post(client, photographer, local_stack):
    name, key = photographer
    photo = noisy_jpeg(1)
    answer = await declare(client, key, declaration(photo, title="Quay", tags="sea,boats"))
    assert answer["method"] == "PUT"
    assert set(answer["headers"]) == {"Content-Length", "x-amz-checksum-sha256"}
    assert answer["expires_at"] > time.strftime("%Y-%m-%d")
    assert answer["url"].startswith(local_stack.s3.endpoint_url)
    assert put(answer["url"], photo, answer["headers"]).status_code == 200
    # The bytes went to the original's own key: completing copies nothing.
    assert await client.services.store.get(original_key(name, answer["upload_id"])) == photo

    done = await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key))
    assert done.status == 202, await done.text()
    body = await done.json()
    assert body == {
        "upload_id": answer["upload_id"],
        "filename": "DSC_0001.JPG",
        "status": "queued",
        "status_url": f"/v1/uploads/{answer['upload_id']}",
    }
    assert await client.services.store.get(original_key(name, answer["upload_id"])) == photo
    [event] = consume_uploads(local_stack.kafka.bootstrap_servers, name, 1)
    assert (str(event.upload_id), event.sha256, event.bytes) == (
        answer["upload_id"],
        hashlib.sha256(photo).hexdigest(),
        len(photo),
    )
    assert (event.title, event.tags, event.content_type) == ("Quay", ("sea", "boats"), "image/jpeg")
    assert await staged(client, name) == []  # neither the declaration nor the pending marker stays
    assert not await client.services.store.exists(pending_key(name, answer["upload_id"]))
    # A retried complete answers the same upload, and publishes nothing more.
    again = await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key))
    assert again.status == 202
    assert (await again.json())["existing"] is True


async def test_s3_itself_refuses_other_bytes_or_another_length_at_the_signed_url(client, photographer):
    _, key = photographer
    photo = noisy_jpeg(0.2)
    answer = await declare(client, key, declaration(photo))
    other = bytearray(photo)
    other[-100] ^= 0xFF
    refused = put(answer["url"], bytes(other), answer["headers"])
    assert refused.status_code == 400
    assert "BadDigest" in refused.text
    longer = put(answer["url"], photo + b"x", {**answer["headers"], "Content-Length": str(len(photo) + 1)})
    assert longer.status_code == 403  # the length is part of the signature
    unsigned = put(answer["url"], photo, {})
    assert unsigned.status_code == 403  # so is the checksum header


async def test_content_already_uploaded_needs_no_url(client, photographer):
    _, key = photographer
    photo = noisy_jpeg(0.1)
    posted = await client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(key))
    [item] = (await posted.json())["uploads"]
    answer = await declare(client, key, declaration(photo), status=200)
    assert answer == {
        "upload_id": item["upload_id"],
        "existing": True,
        "status_url": f"/v1/uploads/{item['upload_id']}",
    }


async def test_complete_before_the_bytes_are_there_is_a_clear_conflict(client, photographer):
    _, key = photographer
    photo = noisy_jpeg(0.1)
    answer = await declare(client, key, declaration(photo))
    body = await problem(await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key)), 409)
    assert body["code"] == "object-missing"
    # Then the bytes come, and the same complete works.
    put(answer["url"], photo, answer["headers"])
    assert (await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key))).status == 202


async def test_a_file_that_is_not_an_image_is_refused_at_complete_and_removed(client, photographer):
    name, key = photographer
    text = b"just text, not a photo\n" * 1000
    answer = await declare(client, key, declaration(text, filename="notes.jpg"))
    assert put(answer["url"], text, answer["headers"]).status_code == 200
    body = await problem(await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key)), 415)
    assert "notes.jpg" in body["detail"]
    assert await staged(client, name) == []
    assert not await client.services.store.exists(pending_key(name, answer["upload_id"]))
    assert not await client.services.store.exists(original_key(name, answer["upload_id"]))
    await problem(await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key)), 404)


async def test_declarations_are_checked(make_client, settings, unique_name):
    client = await make_client(settings.model_copy(update={"max_file_bytes": 1000}))
    key = await client.services.keys.create(unique_name("ph"))
    good = declaration(b"x" * 500)
    assert (
        await problem(await client.post("/v1/uploads/direct", json={**good, "size": 1001}, headers=auth(key)), 413)
    )["code"] == "file-too-large"
    await problem(await client.post("/v1/uploads/direct", json={**good, "size": 0}, headers=auth(key)), 400)
    await problem(await client.post("/v1/uploads/direct", json={**good, "sha256": "abc"}, headers=auth(key)), 400)
    await problem(await client.post("/v1/uploads/direct", json={**good, "size": "500"}, headers=auth(key)), 400)
    await problem(await client.post("/v1/uploads/direct", json={"size": 500}, headers=auth(key)), 400)
    await problem(await client.post("/v1/uploads/direct", data=b"not json", headers=auth(key)), 400)
    await problem(await client.post("/v1/uploads/direct", json=good), 401)


async def test_the_daily_quota_applies_at_the_declaration(make_client, settings, unique_name):
    client = await make_client(settings.model_copy(update={"daily_quota": 1}))
    key = await client.services.keys.create(unique_name("ph"))
    assert (await client.post("/v1/uploads", data=form(("a.jpg", noisy_jpeg(0.1))), headers=auth(key))).status == 202
    refused = await client.post("/v1/uploads/direct", json=declaration(noisy_jpeg(0.1)), headers=auth(key))
    await problem(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0


async def test_a_complete_refused_for_the_quota_leaves_the_original_to_the_sweep_and_asks_for_a_new_declaration(
    make_client, settings, unique_name
):
    client = await make_client(settings.model_copy(update={"daily_quota": 1}))
    name = unique_name("ph")
    key = await client.services.keys.create(name)
    first, second = noisy_jpeg(0.1), noisy_jpeg(0.1)
    # Both declared while the day's one slot is free; the first to complete takes it.
    answers = [await declare(client, key, declaration(photo)) for photo in (first, second)]
    for answer, photo in zip(answers, (first, second), strict=True):
        assert put(answer["url"], photo, answer["headers"]).status_code == 200
    assert (await client.post(f"/v1/uploads/{answers[0]['upload_id']}/complete", headers=auth(key))).status == 202
    refused = answers[1]["upload_id"]
    await problem(await client.post(f"/v1/uploads/{refused}/complete", headers=auth(key)), 429)
    # The original stays marked for the sweep, but the declaration is gone with the refusal: a complete
    # tried again is not refused for the day it was declared on, it is told to declare again.
    assert await client.services.store.get(pending_key(name, refused)) == b""
    assert await client.services.store.exists(original_key(name, refused))
    await problem(await client.post(f"/v1/uploads/{refused}/complete", headers=auth(key)), 404)


async def test_the_same_photo_posted_between_declaration_and_complete_is_one_upload(client, photographer, local_stack):
    name, key = photographer
    photo = noisy_jpeg(0.1)
    answer = await declare(client, key, declaration(photo))
    assert put(answer["url"], photo, answer["headers"]).status_code == 200
    posted = await client.post("/v1/uploads", data=form(("a.jpg", photo)), headers=auth(key))
    [item] = (await posted.json())["uploads"]
    assert item["upload_id"] == answer["upload_id"]
    # The POST's acknowledgement removed the pending marker that held the declaration.
    assert not await client.services.store.exists(pending_key(name, answer["upload_id"]))
    done = await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key))
    assert done.status == 202, await done.text()
    assert (await done.json())["existing"] is True
    [event] = consume_uploads(local_stack.kafka.bootstrap_servers, name, 1)
    assert str(event.upload_id) == answer["upload_id"]
    assert await client.services.store.get(original_key(name, answer["upload_id"])) == photo


async def test_another_photographer_cannot_complete_it(client, photographer, unique_name):
    _, key = photographer
    other = await client.services.keys.create(unique_name("ph"))
    photo = noisy_jpeg(0.1)
    answer = await declare(client, key, declaration(photo))
    put(answer["url"], photo, answer["headers"])
    await problem(await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(other)), 404)
    await problem(await client.post("/v1/uploads/not-a-uuid/complete", headers=auth(key)), 404)


async def test_a_file_over_the_single_put_limit_goes_in_presigned_parts(make_client, settings, unique_name):
    client = await make_client(settings.model_copy(update={"direct_put_max_bytes": 6 * 1024 * 1024}))
    name = unique_name("ph")
    key = await client.services.keys.create(name)
    photo = noisy_jpeg(16)  # about 12 MB: two full parts and a short last one
    answer = await declare(client, key, declaration(photo))
    assert "url" not in answer
    parts = answer["parts"]
    sizes = [part["size"] for part in parts]
    assert sizes[:2] == [PART, PART]
    assert len(sizes) == 3
    assert sum(sizes) == len(photo)
    for part in parts:
        chunk = photo[part["offset"] : part["offset"] + part["size"]]
        assert (await asyncio.to_thread(put, part["url"], chunk, {})).status_code == 200
    done = await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key))
    assert done.status == 202, await done.text()
    assert await client.services.store.get(original_key(name, answer["upload_id"])) == photo
    assert await staged(client, name) == []


async def test_parts_of_the_wrong_size_are_refused_at_complete(make_client, settings, unique_name):
    client = await make_client(settings.model_copy(update={"direct_put_max_bytes": 6 * 1024 * 1024}))
    name = unique_name("ph")
    key = await client.services.keys.create(name)
    photo = noisy_jpeg(12)
    answer = await declare(client, key, declaration(photo))
    first = answer["parts"][0]
    put(first["url"], photo[: first["size"]], {})  # only the first part
    body = await problem(await client.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key)), 409)
    assert body["code"] == "size-mismatch"
    assert f"not the {len(photo)} declared" in body["detail"]


@pytest.mark.parametrize("single_put_max", [5 * 1024**3, 6 * 1024 * 1024], ids=["one PUT", "parts"])
async def test_the_upload_command_sends_direct(make_client, settings, unique_name, tmp_path, single_put_max):
    client = await make_client(settings.model_copy(update={"direct_put_max_bytes": single_put_max}))
    name = unique_name("ph")
    key = await client.services.keys.create(name)
    photo = tmp_path / "IMG_0042.JPG"
    photo.write_bytes(noisy_jpeg(10))
    url = f"http://{client.server.host}:{client.server.port}"
    result = await asyncio.to_thread(  # the command runs its own event loop; the gateway's keeps serving
        CliRunner().invoke, main, ["upload", str(photo), "--direct", "--url", url], env={"PHOTOSTREAM_API_KEY": key}
    )
    assert result.exit_code == 0, result.output
    assert "1 accepted" in result.output
    [upload_id] = [key.rsplit("/", 1)[1] for key in await client.services.store.list_keys(f"originals/{name}/")]
    assert await client.services.store.get(original_key(name, upload_id)) == photo.read_bytes()
    again = await asyncio.to_thread(
        CliRunner().invoke, main, ["upload", str(photo), "--direct", "--url", url], env={"PHOTOSTREAM_API_KEY": key}
    )
    assert "1 duplicates (already uploaded)" in again.output, again.output


def test_resumable_and_direct_are_exclusive(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    result = CliRunner().invoke(
        main, ["upload", str(photo), "--direct", "--resumable"], env={"PHOTOSTREAM_API_KEY": "k"}
    )
    assert result.exit_code == 2
    assert "choose one" in result.output
