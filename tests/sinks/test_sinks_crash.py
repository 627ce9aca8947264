"""The sinks killed mid-batch and restarted: still exactly N images as an analyst sees them, every variant present."""

from __future__ import annotations

import asyncio
import time

import pytest

from photostream.objectstore import ObjectStore
from photostream.warehouse import RemoteReader
from schemas.events import ImageReady
from schemas.topics import PHOTO_READY, PHOTO_VARIANTS
from tests.streams.uploads import photo, upload
from tests.streams.workers import OutputReader, uncommitted

pytestmark = pytest.mark.integration

DB = "photostream"
UPLOADS = 24


async def count(reader: RemoteReader, sql: str, photographer: str) -> int:
    result = await reader.query(sql, {"photographer": photographer})
    return int(result.rows[0][0])


@pytest.mark.timeout(600)
async def test_killed_sinks_double_nothing_and_lose_nothing(make_gateway, workers, sinks, local_stack, unique_name):
    gateway = await make_gateway()
    photographer = unique_name("ph")
    api_key = await gateway.services.keys.create(photographer)
    ready_reader = OutputReader(local_stack.kafka, [PHOTO_READY])
    # The S3 sink batches for half a second here (by default it writes as soon as it is caught up),
    # so that the kill reliably finds a batch written in part and not committed.
    sinks.extra_env["SINKS_S3_BATCH_SECONDS"] = "0.5"
    first = sinks.start()
    workers.start()
    files = [(f"{i}.jpg", photo(5000 + i, size=(1200, 900))) for i in range(UPLOADS)]
    accepted = []
    for start in range(0, UPLOADS, 6):
        accepted += [item["upload_id"] for item in await upload(gateway, api_key, *files[start : start + 6])]
    reader = sinks.reader()
    images_sql = f"SELECT count() FROM {DB}.images FINAL WHERE photographer_id = {{photographer:String}}"
    raw_sql = f"SELECT count() FROM {DB}.images WHERE photographer_id = {{photographer:String}}"
    try:
        # Kill the sinks once some images are in, while the rest are still arriving.
        deadline = time.monotonic() + 180
        while (stored := await count(reader, images_sql, photographer)) < UPLOADS // 4:
            assert time.monotonic() < deadline, sinks.logs() + workers.logs()
            await asyncio.sleep(0.3)
        # Strike when the S3 sink has variants it has not committed.
        while (lag := await asyncio.to_thread(uncommitted, local_stack.kafka, sinks.s3_group, PHOTO_VARIANTS)) == 0:
            assert time.monotonic() < deadline, "the S3 sink never had uncommitted variants"
        first.kill()
        # The kill hit work in flight: images not stored yet, variants whose offsets were not committed.
        in_flight = UPLOADS - stored
        assert in_flight > 0
        assert lag > 0, "every variant offset was committed at the kill: nothing was in flight in the S3 sink"
        await reader.close()
        sinks.start()
        reader = sinks.reader()
        deadline = time.monotonic() + 240
        while await count(reader, images_sql, photographer) < UPLOADS:
            assert time.monotonic() < deadline, sinks.logs() + workers.logs()
            await asyncio.sleep(1)
        # Then the worst case: every commit since the start is lost, and both sinks replay
        # everything they ever wrote (rows, objects, ImageReady) on top of what is there.
        sinks.runs[-1].stop()
        sinks.rewind()
        await reader.close()
        sinks.start()
        reader = sinks.reader()
        deadline = time.monotonic() + 120
        while await count(reader, raw_sql, photographer) < 2 * UPLOADS:
            assert time.monotonic() < deadline, sinks.logs()
            await asyncio.sleep(1)
        images = await count(reader, images_sql, photographer)
        raw_rows = await count(reader, raw_sql, photographer)
        throughput = await count(
            reader,
            f"SELECT sum(images) FROM {DB}.throughput_per_minute WHERE photographer_id = {{photographer:String}}",
            photographer,
        )
        variant_keys = await reader.query(
            f"SELECT key FROM {DB}.variants FINAL WHERE photographer_id = {{photographer:String}}",
            {"photographer": photographer},
        )
    finally:
        await reader.close()
    try:
        assert ready_reader.poll_until(
            lambda r: len({e.upload_id for e in r.of(PHOTO_READY, {photographer})}) >= UPLOADS, timeout=60
        )
        ready_reader.poll_until(lambda r: len(r.of(PHOTO_READY, {photographer})) >= 2 * UPLOADS, timeout=60)
        ready = [e for e in ready_reader.of(PHOTO_READY, {photographer}) if isinstance(e, ImageReady)]
    finally:
        ready_reader.close()
    store = ObjectStore(local_stack.s3)
    try:
        missing = [key for (key,) in variant_keys.rows if not await store.exists(key)]
    finally:
        await store.close()
    distinct_ready = {e.event_id for e in ready}
    print(
        f"\nsinks crash: acknowledged={len(accepted)} images={images} raw image rows={raw_rows} "
        f"ready events={len(ready)} distinct={len(distinct_ready)} missing variants={len(missing)} "
        f"lost={len(set(accepted) - {str(e.upload_id) for e in ready})} doubled={images - len(set(accepted))} "
        f"replayed rows={raw_rows - images} in flight at the kill={in_flight} uncommitted at the kill={lag}"
    )
    assert images == UPLOADS
    assert raw_rows >= 2 * UPLOADS  # the replay really inserted everything again
    assert len(ready) >= 2 * UPLOADS  # and announced every image again, with the same event ids
    assert throughput == UPLOADS
    assert len(variant_keys.rows) == 5 * UPLOADS
    assert not missing
    assert {str(e.upload_id) for e in ready} == set(accepted)
    assert len(distinct_ready) == UPLOADS
