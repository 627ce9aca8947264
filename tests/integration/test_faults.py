"""Faults a deployment meets, under a steady stream of uploads: nothing acknowledged is lost or doubled.

Each test keeps clients uploading (they retry 429/503 as `photostream upload` does), breaks a
server for a while, brings it back, waits for every acknowledged upload to end, then checks
the invariant and prints the counts.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from photostream.objectstore import STAGING_PREFIX, ObjectStore
from photostream.samples import sample_photo
from producers.ledger import original_key
from producers.upload import Uploader
from schemas.events import ImageReady
from schemas.topics import PHOTO_READY
from tests.gateway_client import auth
from tests.processes import free_port, start_service
from tests.streams.workers import OutputReader

pytestmark = pytest.mark.integration

DB = "photostream"
PHOTOS = 24


async def check_invariant(
    gateway, sinks, local_stack, key: str, photographer: str, accepted: list[str], ready_reader
) -> dict:
    """Wait until every acknowledged upload ended, then count what an analyst and a subscriber see."""
    finals: dict[str, str] = {}
    deadline = time.monotonic() + 300
    while len(finals) < len(accepted) and time.monotonic() < deadline:
        for upload_id in accepted:
            if upload_id in finals:
                continue
            response = await gateway.get(f"/v1/uploads/{upload_id}", headers=auth(key))
            if response.status == 200 and (body := await response.json())["status"] != "queued":
                finals[upload_id] = body["status"]
        await asyncio.sleep(1)
    completed = [u for u, status in finals.items() if status == "completed"]
    reader = sinks.reader()
    try:
        who = {"photographer": photographer}
        images = (
            await reader.query(
                f"SELECT count() FROM {DB}.images FINAL WHERE photographer_id = {{photographer:String}}", who
            )
        ).rows[0][0]
        keys = (
            await reader.query(
                f"SELECT key FROM {DB}.variants FINAL WHERE photographer_id = {{photographer:String}}", who
            )
        ).rows
    finally:
        await reader.close()
    store = ObjectStore(local_stack.s3)
    try:
        missing = [k for (k,) in keys if not await store.exists(k)]
    finally:
        store.close()
    ready_reader.poll_until(
        lambda r: len({e.upload_id for e in r.of(PHOTO_READY, {photographer})}) >= len(completed), 60
    )
    ready = [e for e in ready_reader.of(PHOTO_READY, {photographer}) if isinstance(e, ImageReady)]
    ready_ids = {str(e.upload_id) for e in ready}
    counts = {
        "acknowledged": len(accepted),
        "completed": len(completed),
        "failed": sum(1 for s in finals.values() if s == "failed"),
        "lost": len(accepted) - len(finals) + len(set(completed) - ready_ids),
        "doubled": max(0, images - len(completed)) + max(0, len({e.event_id for e in ready}) - len(ready_ids)),
        "missing variants": len(missing),
    }
    return counts


async def assert_one_original_per_upload(local_stack, photographer: str, accepted: list[str]) -> None:
    """The bucket holds one original per acknowledged upload, at its key, and nothing else of the photographer's:
    no original of an upload that failed, no second copy from a retry, no staged upload left behind."""
    store = ObjectStore(local_stack.s3)
    try:
        originals = await store.list_keys(f"originals/{photographer}/")
        staged = await store.list_keys(f"{STAGING_PREFIX}{photographer}/")
    finally:
        store.close()
    print(f"originals: {len(originals)} for {len(set(accepted))} acknowledged uploads, staged: {len(staged)}")
    assert originals == sorted(original_key(photographer, upload_id) for upload_id in set(accepted))
    assert staged == []


def make_photos(tmp_path, seed: int) -> list:
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for index in range(PHOTOS):
        path = folder / f"{index:03d}.jpg"
        path.write_bytes(sample_photo(seed + index, size=(800, 600)))
        paths.append(path)
    return paths


async def steady_uploads(gateway, key: str, paths: list, *, every: float = 1.0, url: str | None = None) -> list[str]:
    """Upload a few photos at a time, one batch a second, as a shoot trickles in; clients retry 429/503."""
    uploader = Uploader(url or str(gateway.make_url("/")), key, parallel=2, attempts=40)
    accepted: list[str] = []
    for start in range(0, len(paths), 3):
        outcomes = await uploader.upload(paths[start : start + 3])
        accepted += [o.upload_id for o in outcomes if o.upload_id]
        await asyncio.sleep(every)
    return accepted


def assert_nothing_lost(counts: dict) -> None:
    """The invariant every fault test ends on."""
    assert counts["acknowledged"] == PHOTOS
    assert counts["lost"] == 0
    assert counts["doubled"] == 0
    assert counts["missing variants"] == 0
    assert counts["completed"] + counts["failed"] == counts["acknowledged"]


async def restart_after(local_stack, server: str, *, delay: float = 2, down_for: float) -> float:
    """Stop one server of the stack a moment into the stream, start it again; returns when it went down."""
    await asyncio.sleep(delay)
    down_at = time.monotonic()
    await asyncio.to_thread(local_stack.stack.down, {server})
    await asyncio.sleep(down_for)
    await asyncio.to_thread(local_stack.stack.up)
    return down_at


async def timed_uploads(gateway, key: str, paths: list, url: str | None = None) -> tuple[list[str], float]:
    """``steady_uploads``, and when the last one was answered."""
    uploads = await steady_uploads(gateway, key, paths, url=url)
    return uploads, time.monotonic()


@pytest.mark.timeout(600)
async def test_s3_restarted_mid_stream(make_gateway, workers, sinks, local_stack, unique_name, tmp_path):
    gateway = await make_gateway()
    photographer = unique_name("ph")
    key = await gateway.services.keys.create(photographer)
    sinks.start()
    workers.start()
    ready_reader = OutputReader(local_stack.kafka, [PHOTO_READY])

    paths = make_photos(tmp_path, 7000)
    try:
        (uploads, uploads_done_at), s3_down_at = await asyncio.gather(
            timed_uploads(gateway, key, paths), restart_after(local_stack, "s3", down_for=5)
        )
        assert uploads_done_at > s3_down_at, "the outage must fall inside the stream of uploads"
        counts = await check_invariant(gateway, sinks, local_stack, key, photographer, uploads, ready_reader)
    finally:
        ready_reader.close()
        local_stack.stack.up()
    print(f"\nS3 restart: {counts}")
    assert_nothing_lost(counts)
    await assert_one_original_per_upload(local_stack, photographer, uploads)


@pytest.mark.timeout(600)
async def test_kafka_restarted_mid_stream(make_gateway, workers, sinks, local_stack, unique_name, tmp_path):
    gateway = await make_gateway()
    photographer = unique_name("ph")
    key = await gateway.services.keys.create(photographer)
    sinks.start()
    workers.start()
    ready_reader = OutputReader(local_stack.kafka, [PHOTO_READY])
    paths = make_photos(tmp_path, 8000)
    restarts = 0

    async def supervise() -> None:
        # What a deployment does (compose's restart policy, `make run`'s supervisor): a worker
        # that exits is started again.
        nonlocal restarts
        while True:
            await asyncio.sleep(1)
            if all(w.process.poll() is not None for w in workers.workers):
                restarts += 1
                workers.start()

    supervisor = asyncio.create_task(supervise())
    try:
        (uploads, uploads_done_at), kafka_down_at = await asyncio.gather(
            timed_uploads(gateway, key, paths), restart_after(local_stack, "kafka", down_for=3)
        )
        assert uploads_done_at > kafka_down_at, "the outage must fall inside the stream of uploads"
        counts = await check_invariant(gateway, sinks, local_stack, key, photographer, uploads, ready_reader)
    finally:
        supervisor.cancel()
        ready_reader.close()
        local_stack.stack.up()
    print(f"\nKafka restart: {counts} worker restarts={restarts}")
    assert_nothing_lost(counts)
    await assert_one_original_per_upload(local_stack, photographer, uploads)


@pytest.mark.timeout(600)
async def test_gateway_killed_mid_stream(make_gateway, workers, sinks, local_stack, unique_name, tmp_path):
    status_gateway = await make_gateway()  # another instance, for reading statuses
    photographer = unique_name("ph")
    key = await status_gateway.services.keys.create(photographer)
    sinks.start()
    workers.start()
    ready_reader = OutputReader(local_stack.kafka, [PHOTO_READY])
    paths = make_photos(tmp_path, 9000)
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.bootstrap_servers,
        "S3_ENDPOINT_URL": local_stack.s3.endpoint_url,
        "GATEWAY_PORT": str(port),
        **sinks.reader_env,
    }

    def start_gateway(index: int):
        process = start_service(["gateway"], env, tmp_path / f"gateway-{index}.log")
        deadline = time.monotonic() + 60
        while "gateway listening" not in process.output():
            assert process.process.poll() is None, process.output()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        return process

    first = start_gateway(0)
    second = None

    async def crash() -> float:
        nonlocal second
        await asyncio.sleep(2)
        killed_at = time.monotonic()
        first.kill()
        await asyncio.sleep(2)
        second = await asyncio.to_thread(start_gateway, 1)
        return killed_at

    try:
        (uploads, uploads_done_at), killed_at = await asyncio.gather(
            timed_uploads(status_gateway, key, paths, url=f"http://127.0.0.1:{port}"), crash()
        )
        assert uploads_done_at > killed_at, "the crash must fall inside the stream of uploads"
        counts = await check_invariant(status_gateway, sinks, local_stack, key, photographer, uploads, ready_reader)
    finally:
        ready_reader.close()
        first.kill()
        if second is not None:
            second.stop()
    print(f"\ngateway kill -9: {counts}")
    logs = first.output() + (second.output() if second else "") + sinks.logs() + workers.logs()
    assert key not in logs
    assert local_stack.s3.secret_access_key.get_secret_value() not in logs
    assert_nothing_lost(counts)  # every file got its 202 in the end, from one instance or the other
    await assert_one_original_per_upload(local_stack, photographer, uploads)
