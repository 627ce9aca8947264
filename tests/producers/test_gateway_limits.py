"""What one client can make the gateway do: unknown keys, 401 floods, the daily quota (real Kafka and S3)."""

from __future__ import annotations

import asyncio
import io
import random
import uuid

import aiohttp
import pytest
from PIL import Image

from photostream.config import GatewaySettings, KafkaSettings
from photostream.topics import ensure_topics
from producers.gateway import create_app
from producers.ledger import UploadLedger
from tests.gateway_client import auth, form, gateway_services

pytestmark = pytest.mark.integration

# Linux routes all of 127/8 to loopback: a second client address for the same server.
OTHER_ADDRESS = "127.0.0.2"


def jpeg(n: int) -> bytes:
    """A small JPEG of its own for each ``n`` (noise: nearby flat colours can encode the same)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (32, 24), random.Random(n).randbytes(32 * 24 * 3)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def topics(local_stack):
    ensure_topics(local_stack.kafka)


@pytest.fixture
def make_client(aiohttp_client, local_stack, topics):
    async def make(*, kafka: KafkaSettings | None = None, **changes):
        settings = GatewaySettings(**{"daily_quota": 1000, **changes})
        services = gateway_services(kafka or local_stack.kafka, local_stack.s3, settings)
        client = await aiohttp_client(create_app(settings, services))
        client.services = services
        return client

    return make


def count_key_reads(store) -> list[str]:
    """Wrap the real store's get_json to record every API-key object it is asked for."""
    reads: list[str] = []
    real = store.get_json

    async def get_json(key):
        if key.startswith("auth/api-keys/"):
            reads.append(key)
        return await real(key)

    store.get_json = get_json
    return reads


async def marked_in_bucket(client, photographer: str) -> int:
    """The day's quota markers as another gateway would count them (nothing of this process's memory)."""
    return await UploadLedger(client.services.store, quota_cache_seconds=0).accepted_today(photographer)


async def status_of(response) -> tuple[int, dict]:
    body = await response.json(content_type=None)
    return response.status, body


# -- unknown keys --------------------------------------------------------------------


async def test_an_unknown_key_is_looked_up_in_s3_once_within_the_cache_time(make_client):
    client = await make_client(unknown_key_cache_seconds=1.5, auth_failure_limit=100)
    reads = count_key_reads(client.services.store)
    bad = auth("psk_" + "u" * 43)
    for _ in range(5):
        assert (await client.get(f"/v1/uploads/{uuid.uuid4()}", headers=bad)).status == 401
    assert len(reads) == 1
    # Many at once share the one read too.
    concurrent = auth("psk_" + "c" * 43)
    answers = await asyncio.gather(*(client.get(f"/v1/uploads/{uuid.uuid4()}", headers=concurrent) for _ in range(8)))
    assert {answer.status for answer in answers} == {401}
    assert len(reads) == 2
    await asyncio.sleep(1.6)  # the cache time is over: S3 is asked again (a key may have been created since)
    assert (await client.get(f"/v1/uploads/{uuid.uuid4()}", headers=bad)).status == 401
    assert len(reads) == 3


# -- repeated 401s -------------------------------------------------------------------


async def test_repeated_401s_from_one_address_get_429_while_other_addresses_and_valid_keys_go_on(
    make_client, unique_name
):
    client = await make_client(auth_failure_limit=3, auth_failure_window_seconds=60)
    reads = count_key_reads(client.services.store)
    known_key = await client.services.keys.create(unique_name("ph"))
    unseen_key = await client.services.keys.create(unique_name("ph"))
    missing = f"/v1/uploads/{uuid.uuid4()}"
    assert (await client.get(missing, headers=auth(known_key))).status == 404  # authenticated: now known here

    for attempt in range(3):
        response = await client.get(missing, headers=auth(f"psk_guess{attempt}" + "g" * 40))
        status, body = await status_of(response)
        assert status == 401, body
    response = await client.get(missing, headers=auth("psk_guess3" + "g" * 40))
    status, body = await status_of(response)
    assert status == 429, body
    assert response.content_type == "application/problem+json"
    assert body["code"] == "too-many-auth-failures"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert (await client.post("/v1/uploads", data=form(("a.jpg", jpeg(1))))).status == 429  # no key at all
    reads_while_blocked = len(reads)
    for attempt in range(5):
        assert (await client.get(missing, headers=auth(f"psk_more{attempt}" + "m" * 40))).status == 429
    assert len(reads) == reads_while_blocked  # nothing a blocked client sends reaches S3

    # The blocked address may still use a key this gateway knows to be valid; one it has not seen waits.
    assert (await client.get(missing, headers=auth(known_key))).status == 404
    assert (await client.get(missing, headers=auth(unseen_key))).status == 429

    connector = aiohttp.TCPConnector(local_addr=(OTHER_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        url = client.make_url(missing)
        async with other.get(url, headers=auth("psk_other" + "o" * 40)) as answer:
            assert answer.status == 401
        async with other.get(url, headers=auth(unseen_key)) as answer:
            assert answer.status == 404  # authenticated
        async with other.post(
            client.make_url("/v1/uploads"), data=form(("b.jpg", jpeg(2))), headers=auth(unseen_key)
        ) as answer:
            assert answer.status == 202, await answer.text()


# -- the daily quota -----------------------------------------------------------------


async def test_a_request_with_more_files_than_the_quota_accepts_only_up_to_it(make_client, unique_name):
    client = await make_client(daily_quota=3)
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    files = [(f"{n}.jpg", jpeg(1000 + n)) for n in range(5)]
    response = await client.post("/v1/uploads", data=form(*files), headers=auth(key))
    status, body = await status_of(response)
    assert status == 207, body
    assert [item["status"] for item in body["uploads"]] == ["queued"] * 3 + ["rejected"] * 2
    assert [item["filename"] for item in body["uploads"]] == [name for name, _ in files]
    for item in body["uploads"][3:]:
        assert item["problem"]["status"] == 429
        assert item["problem"]["code"] == "quota-exceeded"
    assert 0 < int(response.headers["Retry-After"]) <= 86400
    assert await client.services.ledger.accepted_today(photographer) == 3
    assert await marked_in_bucket(client, photographer) == 3
    # Nothing of the refused files was kept: only three originals in S3.
    originals = await client.services.store.list_keys(f"originals/{photographer}/")
    assert len(originals) == 3

    # The same photos again take no new slot and still answer their ids; a new one is refused whole.
    again = await client.post("/v1/uploads", data=form(*files[:1]), headers=auth(key))
    assert again.status == 429  # the day is used up: refused before reading, as before
    over = await client.post("/v1/uploads", data=form(("6.jpg", jpeg(1006)), ("7.jpg", jpeg(1007))), headers=auth(key))
    status, body = await status_of(over)
    assert status == 429, body


async def test_an_existing_photo_in_the_request_takes_no_slot(make_client, unique_name):
    client = await make_client(daily_quota=3)
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    first = await client.post("/v1/uploads", data=form(("0.jpg", jpeg(2000))), headers=auth(key))
    assert first.status == 202
    files = [("0-again.jpg", jpeg(2000)), *((f"{n}.jpg", jpeg(2000 + n)) for n in range(1, 4))]
    status, body = await status_of(await client.post("/v1/uploads", data=form(*files), headers=auth(key)))
    assert status == 207, body
    assert [(item["status"], item.get("existing", False)) for item in body["uploads"]] == [
        ("queued", True),
        ("queued", False),
        ("queued", False),
        ("rejected", False),
    ]
    assert await client.services.ledger.accepted_today(photographer) == 3


async def test_concurrent_requests_on_one_gateway_never_overshoot_the_quota(make_client, unique_name):
    client = await make_client(daily_quota=3)
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    requests = [
        client.post(
            "/v1/uploads", data=form(*((f"{r}-{n}.jpg", jpeg(3000 + 10 * r + n)) for n in range(2))), headers=auth(key)
        )
        for r in range(4)
    ]
    answers = [await status_of(response) for response in await asyncio.gather(*requests)]
    queued = [item for _, body in answers for item in body.get("uploads", []) if item["status"] == "queued"]
    assert len(queued) == 3, answers
    assert await client.services.ledger.accepted_today(photographer) == 3
    assert await marked_in_bucket(client, photographer) == 3
    assert len(await client.services.store.list_keys(f"originals/{photographer}/")) == 3


async def test_a_request_that_fails_gives_its_slots_back(make_client, unique_name):
    client = await make_client(
        daily_quota=2, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"), kafka_delivery_timeout=2
    )
    photographer = unique_name("ph")
    key = await client.services.keys.create(photographer)
    response = await client.post(
        "/v1/uploads", data=form(("a.jpg", jpeg(4000)), ("b.jpg", jpeg(4001))), headers=auth(key)
    )
    assert response.status == 503
    assert await client.services.ledger.accepted_today(photographer) == 0
