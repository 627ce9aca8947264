"""The staging sweep removes what failed uploads left under ``incoming/`` once it is old, and nothing else."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from photostream.config import GatewaySettings
from photostream.objectstore import STAGING_PREFIX, MemoryObjectStore, ObjectStore, StoreUnavailable
from producers.gateway import create_app
from producers.ledger import original_key, pending_key
from producers.staging_sweep import Swept, sweep, sweep_forever
from tests.gateway_client import gateway_services

DAY = timedelta(days=1)


async def never(_upload_id: str) -> bool:
    """No upload was acknowledged."""
    return False


async def _litter(store, prefix: str) -> None:
    """A staged object and an unfinished multipart upload under ``prefix``, as a crash leaves them."""
    await store.put(prefix + "staged", b"x", content_type="image/jpeg")
    await store.start_multipart(prefix + "cut", content_type="image/jpeg")


async def test_only_what_is_older_than_the_age_and_under_the_prefix_goes():
    store = MemoryObjectStore()
    await _litter(store, STAGING_PREFIX + "ph/")
    await store.put("originals/ph/kept.jpg", b"o", content_type="image/jpeg")

    assert await sweep(store, older_than=DAY, acknowledged=never) == Swept(), "a moment old is not a day old"
    assert await sweep(
        store, older_than=DAY, acknowledged=never, now=datetime.now(UTC) + DAY + timedelta(minutes=1)
    ) == Swept(1, 1)
    assert await store.leftovers(STAGING_PREFIX) == []
    assert await store.list_keys("originals/") == ["originals/ph/kept.jpg"]


async def test_a_store_that_fails_is_swept_next_time_and_the_loop_goes_on():
    store = MemoryObjectStore()
    await _litter(store, STAGING_PREFIX)
    store.fail_with(StoreUnavailable("S3 down (test)"), "leftovers")
    sweeping = asyncio.create_task(sweep_forever(store, every=0.05, older_than=timedelta(0), acknowledged=never))
    try:
        await asyncio.sleep(0.3)
        assert store.open_uploads(STAGING_PREFIX) == [STAGING_PREFIX + "cut"], "nothing is listed while S3 is down"
        store.fail_with(None)
        async with asyncio.timeout(5):
            while store.open_uploads(STAGING_PREFIX) or await store.list_keys(STAGING_PREFIX):
                await asyncio.sleep(0.05)
        assert not sweeping.done()
    finally:
        sweeping.cancel()


async def test_an_old_marker_takes_its_original_with_it_unless_the_upload_was_acknowledged():
    store = MemoryObjectStore()
    for upload_id in ("orphan", "acknowledged"):
        await store.put(pending_key("ph", upload_id), b"", content_type="text/plain")
        await store.put(original_key("ph", upload_id), b"photo", content_type="image/jpeg")

    async def acknowledged(upload_id: str) -> bool:
        return upload_id == "acknowledged"

    assert await sweep(store, older_than=DAY, acknowledged=acknowledged) == Swept(), "markers a moment old stay"
    later = datetime.now(UTC) + DAY + timedelta(minutes=1)
    assert await sweep(store, older_than=DAY, acknowledged=acknowledged, now=later) == Swept(objects=2, orphans=1)
    assert await store.list_keys("") == [original_key("ph", "acknowledged")]


@pytest.mark.integration
async def test_on_s3_the_sweep_aborts_and_deletes_the_old_litter(local_stack, unique_name):
    store = ObjectStore(local_stack.s3)
    prefix = f"{STAGING_PREFIX}{unique_name('sweep')}/"
    try:
        await _litter(store, prefix)
        assert await sweep(store, older_than=timedelta(hours=1), acknowledged=never, prefix=prefix) == Swept()
        later = datetime.now(UTC) + timedelta(seconds=5)  # S3 keeps whole seconds
        assert await sweep(store, older_than=timedelta(0), acknowledged=never, prefix=prefix, now=later) == Swept(1, 1)
        assert await store.leftovers(prefix) == []
    finally:
        await store.close()


@pytest.mark.integration
async def test_the_gateway_sweeps_its_staging_area_while_it_runs(aiohttp_client, local_stack, unique_name):
    settings = GatewaySettings(staging_sweep_seconds=0.2, staging_max_age_seconds=1.0)
    services = gateway_services(local_stack.kafka, local_stack.s3, settings)
    photographer = unique_name("sweep")
    prefix = f"{STAGING_PREFIX}{photographer}/"
    await _litter(services.store, prefix)
    # What a gateway killed between storing an original and Kafka's acknowledgement leaves.
    orphan = str(uuid.uuid4())
    await services.store.put(pending_key(photographer, orphan), b"", content_type="text/plain")
    await services.store.put(original_key(photographer, orphan), b"photo", content_type="image/jpeg")
    await aiohttp_client(create_app(settings, services))
    async with asyncio.timeout(15):
        while await services.store.leftovers(prefix):
            await asyncio.sleep(0.2)
    assert not await services.store.exists(original_key(photographer, orphan))
