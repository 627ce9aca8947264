"""Deleting uploads at every stage of the real pipeline: nothing of them stays in S3, on the topics after
the delete, or in the analysts' counts; the history stays, and the same photo can come back.

Gateway in process; a worker and the sinks as processes; Kafka, S3 and the embedded ClickHouse.
Each stage is reached, not assumed: ``queued`` before any worker runs, ``processing`` once the
worker logged that it started on the upload (it waits behind three large images on one image
thread), ``processed`` once its ``ImageProcessed`` is on Kafka while the sinks are not running yet,
``ready`` once its ``ImageReady`` is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from photostream.objectstore import ObjectStore
from schemas.events import ImageProcessed, ImageReady, ProcessingFailed, UploadDeleted
from schemas.topics import PHOTO_DELETED, PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_READY
from tests.gateway_client import auth
from tests.producers.test_live import read_sse
from tests.streams.uploads import large_png, photo, upload
from tests.streams.workers import OutputReader

pytestmark = pytest.mark.integration

DB = "photostream"
STAGES = ("queued", "processing", "processed", "ready")


async def until(condition: Callable[[], object], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_deletes_at_every_stage_leave_nothing_behind_but_history(
    make_gateway, workers, sinks, local_stack, unique_name
):
    gateway = await make_gateway()
    photographer = unique_name("ph")
    key = await gateway.services.keys.create(photographer)
    reader = OutputReader(local_stack.kafka, [PHOTO_PROCESSED, PHOTO_READY, PHOTO_FAILED, PHOTO_DELETED])
    store = ObjectStore(local_stack.s3)
    deleted: dict[str, str] = {}  # stage -> upload id
    deleted_offsets: dict[str, int] = {}  # stage -> how many events of the upload were read before its delete

    def events_of(upload_id: str, kind: type | None = None, *, received_after: datetime | None = None) -> list:
        every = [event for topic in reader.events for event in reader.of(topic, {photographer})]
        return [
            e
            for e in every
            if str(e.upload_id) == upload_id
            and (kind is None or isinstance(e, kind))
            and (received_after is None or e.received_at > received_after)
        ]

    async def send(name: str, data: bytes) -> str:
        [entry] = await upload(gateway, key, (name, data))
        return entry["upload_id"]

    async def delete(stage: str, upload_id: str) -> None:
        reader.poll_until(lambda _: False, timeout=0.2)  # what was on Kafka before the delete
        deleted_offsets[stage] = len(events_of(upload_id))
        response = await gateway.delete(f"/v1/uploads/{upload_id}", headers=auth(key))
        assert response.status == 204, await response.text()
        deleted[stage] = upload_id

    try:
        # queued: no worker runs yet.
        comeback = photo(1, size=(900, 600))
        await delete("queued", await send("queued.jpg", comeback))

        # processing: the upload waits behind three large images for the worker's one image thread.
        workers.extra_env = {"WORKER_THREADS": "1"}
        fillers = [await send(f"large-{seed}.png", large_png(seed)) for seed in range(3)]
        processing = await send("processing.jpg", photo(2, size=(2400, 1600)))
        worker = workers.start()
        await until(lambda: f"processing upload {processing}" in worker.output(), "the worker to start on it")
        await delete("processing", processing)

        # processed: rendered, its ImageProcessed on Kafka, the S3 sink not running yet.
        processed = await send("processed.jpg", photo(3, size=(900, 600)))
        await until(
            lambda: reader.poll_until(lambda _: events_of(processed, ImageProcessed), timeout=0.5),
            "ImageProcessed",
        )
        await delete("processed", processed)

        # ready: the sinks run; the upload is announced, then deleted.
        sinks.start()
        ready_photo = photo(4, size=(900, 600))
        ready = await send("ready.jpg", ready_photo)
        await until(lambda: reader.poll_until(lambda _: events_of(ready, ImageReady), timeout=0.5), "ImageReady")
        await delete("ready", ready)

        # The same photo as the deleted queued one, and one never deleted: both end ready.
        again = await send("again.jpg", comeback)
        assert again == deleted["queued"], "the id is the content's"
        kept = await send("kept.jpg", photo(5, size=(900, 600)))
        # The ready one sent again the same day: the same id and variant keys as the one announced and deleted.
        ready_again = await send("ready-again.jpg", ready_photo)
        assert ready_again == ready
        following = asyncio.create_task(
            read_sse(await gateway.get(f"/v1/uploads/{ready_again}/events", headers=auth(key)), timeout=240)
        )
        survivors = [*fillers, again, kept, ready_again]

        def sent_again(upload_id: str) -> datetime | None:
            """For a photo sent again after its delete, that delete's time: its new events come after it."""
            return next((e.deleted_at for e in events_of(upload_id, UploadDeleted)), None)

        await until(
            lambda: reader.poll_until(
                lambda _: (
                    len(reader.of(PHOTO_DELETED, {photographer})) == len(STAGES)
                    and all(
                        events_of(upload_id, ImageReady, received_after=sent_again(upload_id))
                        for upload_id in survivors
                    )
                ),
                timeout=0.5,
            ),
            "the survivors' ImageReady and every UploadDeleted",
            timeout=240,
        )

        # The worker's side: the processing one was decided after its delete, never emitted.
        logs = worker.output()
        assert f"forgot deleted upload {processing}" in logs
        assert not events_of(processing, ImageProcessed), "processing finished before the delete: stage not reached"
        assert not events_of(processing, ProcessingFailed)

        # Topics: after each delete, nothing of the upload it deleted but the delete itself (a photo sent again
        # has events of its own, received after the delete).
        for stage, upload_id in deleted.items():
            [gone_event] = events_of(upload_id, UploadDeleted)
            of_deleted = [e for e in events_of(upload_id) if e.received_at == gone_event.received_at]
            assert len(of_deleted) == deleted_offsets[stage] + 1, (stage, of_deleted)
            assert gone_event.deleted_at >= gone_event.received_at
        ready_events = {e.event_id: e for e in events_of(ready, ImageReady)}.values()
        assert sorted(e.received_at <= sent_again(ready) for e in ready_events) == [False, True], (
            "announced once before its delete, and once as the photo sent again"
        )
        assert not events_of(deleted["processed"], ImageReady)

        # S3: nothing of the deleted uploads once the S3 sink has read the deletes; the survivors whole.
        gone = [deleted[stage] for stage in ("processing", "processed")]

        async def leftovers() -> list[str]:
            keys = await store.list_keys(f"originals/{photographer}/") + await store.list_keys(
                f"derivatives/{photographer}/"
            )
            return [k for k in keys if any(upload_id in k for upload_id in gone)]

        deadline = time.monotonic() + 60
        while (left := await leftovers()) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert left == [], left
        for upload_id in survivors:
            assert await store.exists(f"originals/{photographer}/{upload_id}")
            latest = {e.event_id: e for e in events_of(upload_id, ImageReady, received_after=sent_again(upload_id))}
            [ready_event] = latest.values()
            for variant in ready_event.variants:
                assert await store.exists(variant.key), variant.key

        # The gateway: the deleted are gone, the one uploaded again is there and complete.
        for upload_id in gone:
            response = await gateway.get(f"/v1/uploads/{upload_id}", headers=auth(key))
            assert response.status == 404
        for upload_id, filename in ((again, "again.jpg"), (ready_again, "ready-again.jpg")):
            body: dict = {}
            deadline = time.monotonic() + 60
            while body.get("status") != "completed" and time.monotonic() < deadline:
                await asyncio.sleep(0.5)  # ImageReady was read; ClickHouse takes it in the sinks' next batch
                body = await (await gateway.get(f"/v1/uploads/{upload_id}", headers=auth(key))).json()
            assert body["status"] == "completed", body
            assert body["filename"] == filename
            assert datetime.fromisoformat(body["received_at"]) > sent_again(upload_id)

        # A follower of the photo sent again hears its own stages, none of the deleted upload's.
        followed = await following
        assert [name for name, _ in followed] == ["received", "processing", "processed", "ready"], followed
        assert all(datetime.fromisoformat(data["at"]) > sent_again(ready_again) for _, data in followed)

        # ClickHouse: every delete recorded, the history kept, deleted images out of the library's counts.
        await check_clickhouse(sinks, photographer, deleted, again, survivors)
    except BaseException:
        print(sinks.logs() + workers.logs())
        raise
    finally:
        reader.close()
        await store.close()


async def check_clickhouse(sinks, photographer: str, deleted: dict[str, str], again: str, survivors: list[str]) -> None:
    reader = sinks.reader()
    params = {"photographer": photographer}
    try:
        deadline = time.monotonic() + 60
        while True:  # the ClickHouse sink takes the last deletes in its next batch
            rows = await reader.query(
                f"SELECT toString(upload_id) FROM {DB}.deletions FINAL WHERE photographer_id = {{photographer:String}}",
                params,
            )
            if len(rows.rows) == len(STAGES) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert sorted(upload_id for (upload_id,) in rows.rows) == sorted(deleted.values())
        stages = await reader.query(
            f"SELECT toString(upload_id), status, deleted_at IS NOT NULL FROM {DB}.image_stages "
            "WHERE photographer_id = {photographer:String} ORDER BY received_at",
            params,
        )
        stage_of = {upload_id: stage for stage, upload_id in deleted.items()}
        first, *rest = stages.rows  # the queued upload came first; its id came back as `again`
        assert (first[0], first[1:]) == (again, ("deleted", True))
        seen = {(stage_of.get(upload_id, upload_id), status, gone) for upload_id, status, gone in rest}
        assert ("processing", "deleted", True) in seen
        assert ("processed", "deleted", True) in seen, "processed, deleted before it was ready"
        assert ("ready", "completed", True) in seen, "ready, then deleted: the history stays"
        assert ("queued", "completed", False) in seen, "the same photo sent again: a new upload, completed"
        assert ("ready", "completed", False) in seen, "sent again the same day after it was ready and deleted"
        assert sum(1 for _, status, gone in stages.rows if status == "completed" and not gone) == len(survivors)
        queued = await reader.query(
            f"SELECT count() FROM {DB}.queued_uploads WHERE photographer_id = {{photographer:String}}", params
        )
        assert queued.rows[0][0] == 0, "deleted uploads wait for nothing"
        library = await reader.query(
            f"SELECT images FROM {DB}.duplicates_per_photographer WHERE photographer_id = {{photographer:String}}",
            params,
        )
        assert library.rows[0][0] == len(survivors), "the processed-then-deleted images are not counted"
    finally:
        await reader.close()
