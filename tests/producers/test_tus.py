"""Resumable uploads (tus 1.0.0 at /v1/tus/): the protocol, against the real Kafka and S3 of the local stack."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest

from photostream.config import GatewaySettings
from producers.ledger import original_key
from producers.tus import TUS_PREFIX, sweep_expired
from tests.gateway_client import auth, form
from tests.producers.test_gateway import consume_uploads, noisy_jpeg, problem

pytestmark = pytest.mark.integration

TUS = {"Tus-Resumable": "1.0.0"}
PART = 5 * 1024 * 1024


def metadata(**fields: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in fields.items())


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A JPEG of about 12 MB: two full S3 parts and a short last one."""
    return noisy_jpeg(12)


@pytest.fixture
def settings():
    return GatewaySettings(max_file_bytes=20 * 1024 * 1024, daily_quota=1000, part_bytes=PART)


async def create(client, key: str, length: int, **fields: str):
    response = await client.post(
        "/v1/tus/",
        headers={**TUS, **auth(key), "Upload-Length": str(length), "Upload-Metadata": metadata(**fields)},
    )
    assert response.status == 201, await response.text()
    assert response.headers["Tus-Resumable"] == "1.0.0"
    return response.headers["Location"]


async def patch(client, key: str, url: str, offset: int, body: bytes, **headers: str):
    return await client.patch(
        url,
        data=io.BytesIO(body),
        headers={
            **TUS,
            **auth(key),
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            **headers,
        },
    )


async def head(client, key: str, url: str):
    return await client.head(url, headers={**TUS, **auth(key)})


def raw_patch(url: str, key: str, *, offset: int, length: int, expect_continue: bool = False) -> bytes:
    """A PATCH's request line and headers, for a test that writes (and cuts) the body itself."""
    expect = "Expect: 100-continue\r\n" if expect_continue else ""
    return (
        f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer {key}\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {length}\r\n{expect}\r\n"
    ).encode()


async def send_in_chunks(client, key: str, url: str, data: bytes, chunk: int, start: int = 0):
    response = None
    for offset in range(start, len(data), chunk):
        response = await patch(client, key, url, offset, data[offset : offset + chunk])
        assert response.status == 204, await response.text()
        assert int(response.headers["Upload-Offset"]) == min(offset + chunk, len(data))
    return response


async def test_options_advertise_the_version_extensions_limit_and_checksums(client):
    response = await client.options("/v1/tus/")
    assert response.status == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    }
    assert int(response.headers["Tus-Max-Size"]) == 20 * 1024 * 1024
    assert {"sha1", "sha256"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))


async def test_chunks_of_any_size_become_the_same_original_and_event_as_a_post(
    client, photographer, local_stack, photo
):
    name, key = photographer
    url = await create(client, key, len(photo), filename="IMG_0001.JPG", title="Venue", tags="gig, night")
    started = await head(client, key, url)
    assert started.status == 200
    assert started.headers["Upload-Offset"] == "0"
    assert started.headers["Upload-Length"] == str(len(photo))
    assert started.headers["Cache-Control"] == "no-store"
    assert "Upload-Expires" in started.headers
    # 3 MB chunks: every part boundary falls inside a chunk, and bytes wait in tails between PATCHes.
    last = await send_in_chunks(client, key, url, photo, 3 * 1024 * 1024)
    upload_id = last.headers["Photostream-Upload-Id"]
    assert last.headers["Photostream-Status-Url"] == f"/v1/uploads/{upload_id}"
    assert "Photostream-Existing" not in last.headers

    store = client.services.store
    assert await store.get(original_key(name, upload_id)) == photo
    [event] = consume_uploads(local_stack.kafka.bootstrap_servers, name, 1)
    assert str(event.upload_id) == upload_id
    assert event.sha256 == hashlib.sha256(photo).hexdigest()
    assert (event.filename, event.title, event.tags, event.bytes) == (
        "IMG_0001.JPG",
        "Venue",
        ("gig", "night"),
        len(photo),
    )
    assert event.content_type == "image/jpeg"
    # Nothing of the upload is left but its state, which answers a client that lost the last answer.
    tus_id = url.rsplit("/", 1)[-1]
    assert await store.list_keys(f"{TUS_PREFIX}{name}/") == [f"{TUS_PREFIX}{name}/{tus_id}.info"]
    again = await head(client, key, url)
    assert again.headers["Upload-Offset"] == str(len(photo))
    assert again.headers["Photostream-Upload-Id"] == upload_id
    status = await client.get(f"/v1/uploads/{upload_id}", headers=auth(key))
    assert (await status.json())["filename"] == "IMG_0001.JPG"


async def test_content_already_posted_answers_the_existing_image(client, photographer):
    name, key = photographer
    small = noisy_jpeg(0.3)
    posted = await client.post("/v1/uploads", data=form(("a.jpg", small)), headers=auth(key))
    [item] = (await posted.json())["uploads"]
    url = await create(client, key, len(small), filename="b.jpg")
    response = await patch(client, key, url, 0, small)
    assert response.status == 204, await response.text()
    assert response.headers["Photostream-Upload-Id"] == item["upload_id"]
    assert response.headers["Photostream-Existing"] == "true"
    assert await client.services.store.list_keys(f"{TUS_PREFIX}{name}/") == [
        f"{TUS_PREFIX}{name}/{url.rsplit('/', 1)[-1]}.info"
    ]


async def test_creation_with_upload_takes_the_whole_file_in_one_request(client, photographer):
    _, key = photographer
    small = noisy_jpeg(0.2)
    response = await client.post(
        "/v1/tus/",
        data=io.BytesIO(small),
        headers={
            **TUS,
            **auth(key),
            "Upload-Length": str(len(small)),
            "Upload-Metadata": metadata(filename="one.jpg"),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert response.status == 201, await response.text()
    assert response.headers["Upload-Offset"] == str(len(small))
    assert response.headers["Photostream-Upload-Id"]


async def test_a_patch_at_the_wrong_offset_is_a_conflict_and_changes_nothing(client, photographer, photo):
    _, key = photographer
    url = await create(client, key, len(photo), filename="x.jpg")
    await send_in_chunks(client, key, url, photo[:1000], 1000)
    body = await problem(await patch(client, key, url, 0, photo[:10]), 409)
    assert "offset 1000" in body["detail"]
    assert (await head(client, key, url)).headers["Upload-Offset"] == "1000"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
async def test_checksums_accept_the_right_body_and_refuse_a_wrong_one(client, photographer, photo, algorithm):
    _, key = photographer
    url = await create(client, key, len(photo), filename="x.jpg")
    chunk = photo[: 6 * 1024 * 1024]  # past one full part: a refused body must not keep it

    def digest(data: bytes) -> str:
        return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"

    refused = await patch(client, key, url, 0, chunk, **{"Upload-Checksum": digest(chunk + b"x")})
    assert refused.status == 460, await refused.text()
    assert (await head(client, key, url)).headers["Upload-Offset"] == "0"
    accepted = await patch(client, key, url, 0, chunk, **{"Upload-Checksum": digest(chunk)})
    assert accepted.status == 204, await accepted.text()
    rest = await patch(
        client, key, url, len(chunk), photo[len(chunk) :], **{"Upload-Checksum": digest(photo[len(chunk) :])}
    )
    assert rest.status == 204, await rest.text()
    upload_id = rest.headers["Photostream-Upload-Id"]
    name = photographer[0]
    assert await client.services.store.get(original_key(name, upload_id)) == photo


async def test_an_unknown_checksum_algorithm_is_a_bad_request(client, photographer):
    _, key = photographer
    url = await create(client, key, 100, filename="x.jpg")
    await problem(await patch(client, key, url, 0, b"x" * 10, **{"Upload-Checksum": "crc32 AAAA"}), 400)


async def test_a_file_that_is_not_an_image_is_refused_at_its_last_byte_and_removed(client, photographer):
    name, key = photographer
    text = b"not an image at all\n" * 5000
    url = await create(client, key, len(text), filename="notes.jpg")
    await send_in_chunks(client, key, url, text[:50_000], 50_000)
    body = await problem(await patch(client, key, url, 50_000, text[50_000:]), 415)
    assert "notes.jpg" in body["detail"]
    assert (await head(client, key, url)).status == 404
    assert await client.services.store.list_keys(f"{TUS_PREFIX}{name}/") == []


async def test_limits_apply_at_creation(make_client, settings, photographer, unique_name):
    _, key = photographer
    client = await make_client(settings.model_copy(update={"max_file_bytes": 1000}))
    key = await client.services.keys.create(unique_name("ph"))
    headers = {**TUS, **auth(key), "Upload-Metadata": metadata(filename="big.jpg")}
    too_large = await client.post("/v1/tus/", headers={**headers, "Upload-Length": "1001"})
    assert "big.jpg" in (await problem(too_large, 413))["detail"]
    await problem(await client.post("/v1/tus/", headers={**headers, "Upload-Length": "0"}), 400)
    await problem(await client.post("/v1/tus/", headers={**headers, "Upload-Length": "-1"}), 400)
    await problem(await client.post("/v1/tus/", headers={**headers, "Upload-Defer-Length": "1"}), 400)
    unversioned = await client.post("/v1/tus/", headers={**auth(key), "Upload-Length": "10"})
    await problem(unversioned, 412)
    assert unversioned.headers["Tus-Version"] == "1.0.0"
    await problem(await client.post("/v1/tus/", headers={**TUS, "Upload-Length": "10"}), 401)


async def test_the_daily_quota_applies_at_creation(make_client, settings, unique_name):
    client = await make_client(settings.model_copy(update={"daily_quota": 1}))
    key = await client.services.keys.create(unique_name("ph"))
    posted = await client.post("/v1/uploads", data=form(("a.jpg", noisy_jpeg(0.1))), headers=auth(key))
    assert posted.status == 202
    refused = await client.post("/v1/tus/", headers={**TUS, **auth(key), "Upload-Length": "10"})
    await problem(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0


async def test_another_photographers_upload_is_not_found(client, photographer, unique_name):
    _, key = photographer
    other = await client.services.keys.create(unique_name("ph"))
    url = await create(client, key, 100, filename="x.jpg")
    assert (await head(client, other, url)).status == 404  # a HEAD answer has no body
    await problem(await patch(client, other, url, 0, b"x"), 404)
    await problem(await client.delete(url, headers={**TUS, **auth(other)}), 404)
    assert (await head(client, key, url)).status == 200


async def test_termination_removes_the_parts_and_the_upload(client, photographer, photo):
    name, key = photographer
    url = await create(client, key, len(photo), filename="x.jpg")
    await send_in_chunks(client, key, url, photo[: 7 * 1024 * 1024], 7 * 1024 * 1024)  # a part and a tail
    store = client.services.store
    assert len(await store.list_keys(f"{TUS_PREFIX}{name}/")) == 2
    response = await client.delete(url, headers={**TUS, **auth(key)})
    assert response.status == 204
    assert (await head(client, key, url)).status == 404
    assert await store.list_keys(f"{TUS_PREFIX}{name}/") == []
    assert [left for left in await store.leftovers(f"{TUS_PREFIX}{name}/") if left.upload] == []


async def test_an_upload_started_on_one_instance_finishes_on_another(make_client, settings, photographer, photo):
    name, key = photographer
    first, second = await make_client(settings), await make_client(settings)
    url = await create(first, key, len(photo), filename="x.jpg")
    await send_in_chunks(first, key, url, photo[: 4 * 1024 * 1024], 4 * 1024 * 1024)
    offset = int((await head(second, key, url)).headers["Upload-Offset"])
    last = await send_in_chunks(second, key, url, photo, 4 * 1024 * 1024, start=offset)
    assert await second.services.store.get(original_key(name, last.headers["Photostream-Upload-Id"])) == photo


async def test_a_body_cut_off_mid_way_keeps_what_arrived(client, photographer, photo):
    _, key = photographer
    url = await create(client, key, len(photo), filename="x.jpg")
    sent = 6 * 1024 * 1024 + 12345
    _, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(raw_patch(url, key, offset=0, length=len(photo)) + photo[:sent])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    deadline = asyncio.get_running_loop().time() + 10
    while (offset := int((await head(client, key, url)).headers["Upload-Offset"])) == 0:
        assert asyncio.get_running_loop().time() < deadline, "the cut-off bytes were never saved"
        await asyncio.sleep(0.1)
    assert offset == sent
    last = await send_in_chunks(client, key, url, photo, len(photo), start=offset)
    upload_id = last.headers["Photostream-Upload-Id"]
    assert await client.services.store.get(original_key(photographer[0], upload_id)) == photo


async def test_a_head_right_after_a_cut_answers_what_the_cut_request_kept(client, photographer, photo):
    """A client that resumes at once must not be told the offset from before the cut request.

    The cut request saves what it took a moment after the connection drops; a HEAD in that moment
    waits for it. Told the old offset, a client would send the tail again, only to be refused with a
    conflict (409) and ask once more.
    """
    _, key = photographer
    url = await create(client, key, len(photo), filename="x.jpg")
    start = 1024 * 1024
    await send_in_chunks(client, key, url, photo[:start], start)
    sent = 6 * 1024 * 1024 + 12345
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(raw_patch(url, key, offset=start, length=len(photo) - start, expect_continue=True))
    assert (await reader.readline()).startswith(b"HTTP/1.1 100")  # the handler runs: the body is not just buffered
    await reader.readline()
    writer.write(photo[start : start + sent])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    response = await head(client, key, url)
    assert response.status == 200
    assert int(response.headers["Upload-Offset"]) == start + sent


async def test_expired_uploads_are_refused_and_swept_with_their_parts(make_client, settings, photographer, photo):
    name, key = photographer
    client = await make_client(settings.model_copy(update={"tus_expiry_seconds": 1}))
    url = await create(client, key, len(photo), filename="x.jpg")
    await send_in_chunks(client, key, url, photo[: 7 * 1024 * 1024], 7 * 1024 * 1024)
    expires = (await head(client, key, url)).headers["Upload-Expires"]
    assert expires.endswith("GMT")
    await asyncio.sleep(1.1)
    assert (await head(client, key, url)).status == 404
    store = client.services.store
    removed = await sweep_expired(store, older_than=timedelta(days=1))
    assert removed >= 1
    assert await store.list_keys(f"{TUS_PREFIX}{name}/") == []
    assert [left for left in await store.leftovers(f"{TUS_PREFIX}{name}/") if left.upload] == []


async def test_the_sweep_leaves_uploads_in_progress(client, photographer, photo):
    name, key = photographer
    url = await create(client, key, len(photo), filename="x.jpg")
    await send_in_chunks(client, key, url, photo[: 6 * 1024 * 1024], 6 * 1024 * 1024)  # a part: a multipart upload
    await sweep_expired(client.services.store, now=datetime.now(UTC), older_than=timedelta(0))
    assert (await head(client, key, url)).status == 200
    assert [left for left in await client.services.store.leftovers(f"{TUS_PREFIX}{name}/") if left.upload]
