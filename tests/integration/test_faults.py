"""Faults a deployment meets, under a steady stream of uploads: nothing acknowledged is lost or doubled.

Each test keeps clients uploading (they retry 429/503 as `photostream upload` does), breaks a
server for a while, brings it back, waits for every acknowledged upload to end, then checks
the invariant and prints the counts.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

import pytest

from photostream.objectstore import STAGING_PREFIX, ObjectStore
from photostream.samples import sample_photo
from photostream.stack import State
from producers.ledger import original_key
from producers.upload import Uploader
from schemas.events import ImageReady
from schemas.topics import PHOTO_READY, PHOTO_VARIANTS
from tests.gateway_client import auth
from tests.processes import free_port, start_gateway
from tests.streams.workers import OutputReader, uncommitted

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
        # Before deduplication: how often each image's row was written, and whether its copies agree.
        raw_rows, distinct_rows = (
            await reader.query(
                f"SELECT count(), uniqExact(tuple(upload_id, sha256, phash, duplicate_of, width, height)) "
                f"FROM {DB}.images WHERE photographer_id = {{photographer:String}}",
                who,
            )
        ).rows[0]
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
        await store.close()
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
        # A second image of one upload: rows or events that differ for the same upload, or more images than uploads.
        "doubled": max(0, images - len(completed))
        + max(0, distinct_rows - images)
        + max(0, len({e.event_id for e in ready}) - len(ready_ids)),
        # The same image written again (at least once delivery), harmless by design.
        "replayed": (raw_rows - distinct_rows) + (len(ready) - len({e.event_id for e in ready})),
        "missing variants": len(missing),
    }
    unfinished = [u for u in accepted if u not in finals] + sorted(set(completed) - ready_ids)
    if unfinished:
        await explain_unfinished(gateway, key, sinks, local_stack, photographer, unfinished, ready_reader)
    return counts


# Lines every outage repeats; left out of a failure's log excerpts so the lines that tell why remain.
_OUTAGE_NOISE = ("Connect to ipv4", "Connection refused", "Unable connect to node", "Unable to update metadata")


def notable_lines(log: str, limit: int = 80) -> str:
    """The warnings and errors of a service's log, without the connection errors of the outage itself."""
    levels = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")
    lines = [
        line
        for line in log.splitlines()
        if any(level in line for level in levels) and not any(noise in line for noise in _OUTAGE_NOISE)
    ]
    return "\n".join(lines[-limit:])


async def explain_unfinished(
    gateway, key: str, sinks, local_stack, photographer: str, unfinished: list[str], ready_reader
) -> None:
    """Print how far each unfinished upload got, and what the sinks logged, so a failure says where it stopped.

    The status reads the rows of the upload's own ``received_at`` (the ledger's): the rows' times are printed
    beside it, since rows of another incarnation of the upload would leave the status ``queued`` for ever.
    """
    ready_reader.poll_until(lambda r: False, 5)  # whatever ImageReady came late
    ready_ids = {str(e.upload_id) for e in ready_reader.of(PHOTO_READY, {photographer}) if isinstance(e, ImageReady)}
    reader = sinks.reader()
    try:
        rows: dict[str, dict[str, list[str]]] = {}
        for table in ("images", "ready"):
            rows[table] = {}
            answer = await reader.query(
                f"SELECT upload_id, toString(received_at) FROM {DB}.{table} "
                "WHERE photographer_id = {photographer:String}",
                {"photographer": photographer},
            )
            for upload_id, received_at in answer.rows:
                rows[table].setdefault(str(upload_id), []).append(received_at)
    finally:
        await reader.close()
    store = ObjectStore(local_stack.s3)
    try:
        stored = await store.list_keys(f"derivatives/{photographer}/")
    finally:
        await store.close()
    print(f"\n{len(unfinished)} uploads did not end; how far each got:")
    for upload_id in unfinished:
        response = await gateway.get(f"/v1/uploads/{upload_id}", headers=auth(key))
        status = await response.json() if response.status == 200 else {}
        variants = sum(1 for name in stored if f"/{upload_id}/" in name)
        print(
            f"  {upload_id}: status {response.status} {status.get('status')} (ledger received_at "
            f"{status.get('received_at')}), image rows {rows['images'].get(upload_id)}, variants in S3 {variants}, "
            f"ImageReady {upload_id in ready_ids}, ready rows {rows['ready'].get(upload_id)}"
        )
    print(f"sinks' warnings and errors:\n{notable_lines(sinks.logs_in_full())}")


async def assert_one_original_per_upload(local_stack, photographer: str, accepted: list[str]) -> None:
    """The bucket holds one original per acknowledged upload, at its key, and nothing else of the photographer's:
    no original of an upload that failed, no second copy from a retry, no staged upload left behind."""
    store = ObjectStore(local_stack.s3)
    try:
        originals = await store.list_keys(f"originals/{photographer}/")
        staged = await store.list_keys(f"{STAGING_PREFIX}{photographer}/")
    finally:
        await store.close()
    print(f"originals: {len(originals)} for {len(set(accepted))} acknowledged uploads, staged: {len(staged)}")
    assert originals == sorted(original_key(photographer, upload_id) for upload_id in set(accepted))
    assert staged == []


def gateway_env(local_stack, sinks, port: int) -> dict[str, str]:
    """The environment of a gateway process on the local stack, reading status through ``sinks``."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.bootstrap_servers,
        "S3_ENDPOINT_URL": local_stack.s3.endpoint_url,
        "GATEWAY_PORT": str(port),
        **sinks.reader_env,
    }


def make_photos(tmp_path, seed: int) -> list:
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for index in range(PHOTOS):
        path = folder / f"{index:03d}.jpg"
        path.write_bytes(sample_photo(seed + index, size=(800, 600)))
        paths.append(path)
    return paths


async def steady_uploads(
    gateway, key: str, paths: list, *, every: float = 1.0, url: str | None = None, accepted: list[str] | None = None
) -> list[str]:
    """Upload a few photos at a time, one batch a second, as a shoot trickles in; clients retry 429/503.

    ``accepted`` (if given) fills as uploads are acknowledged, for a fault to see what is in flight.
    """
    uploader = Uploader(url or str(gateway.make_url("/")), key, parallel=2, attempts=40)
    accepted = [] if accepted is None else accepted
    for start in range(0, len(paths), 3):
        outcomes = await uploader.upload(paths[start : start + 3])
        accepted += [o.upload_id for o in outcomes if o.upload_id]
        await asyncio.sleep(every)
    return accepted


def assert_nothing_lost(counts: dict) -> None:
    """The invariant every fault test ends on: the outages are shorter than every retry window, so a failed
    upload is a loss to the photographer as much as a lost one; and the fault hit work in flight."""
    assert counts["acknowledged"] == PHOTOS
    assert counts["lost"] == 0
    assert counts["failed"] == 0
    assert counts["doubled"] == 0
    assert counts["missing variants"] == 0
    assert counts["completed"] == counts["acknowledged"]
    assert counts["in flight at the fault"] > 0, "nothing was accepted and not yet ready at the fault"
    assert counts["uncommitted at the fault"] > 0, "no offset was left to commit at the fault"


class InFlight:
    """What was accepted and not yet done when a fault struck: proof that the fault hit work in flight.

    ``strike`` waits (a few seconds at most) for a moment when uploads are acknowledged and not yet
    ready and offsets are uncommitted, and notes it; ``counts`` later tells, from every ``ImageReady``
    seen by then, how many of the uploads acknowledged at that moment were ready only after it.
    """

    def __init__(self, local_stack, workers, sinks, ready_reader, photographer: str) -> None:
        self.accepted: list[str] = []
        self._local_stack, self._workers, self._sinks = local_stack, workers, sinks
        self._ready_reader, self._photographer = ready_reader, photographer
        self._moment: datetime | None = None
        self._accepted_then: set[str] = set()
        self._uncommitted_then = 0

    def _ready(self) -> dict[str, datetime]:
        events = self._ready_reader.of(PHOTO_READY, {self._photographer})
        return {str(e.upload_id): e.ready_at for e in events if isinstance(e, ImageReady)}

    async def strike(self, timeout: float = 10) -> None:
        """Return at a moment with work in flight (or after ``timeout``: then ``counts`` says nothing was).

        The moment is right after an upload was acknowledged, which cannot be ready yet, with offsets
        uncommitted; reading ``ImageReady`` alone could miss one that was ready a moment before.
        """
        kafka = self._local_stack.kafka
        deadline = time.monotonic() + timeout
        seen = len(self.accepted)
        while True:
            await asyncio.sleep(0.05)
            fresh = len(self.accepted) > seen
            seen = len(self.accepted)
            if not fresh and time.monotonic() < deadline:
                continue
            self._moment, self._accepted_then = datetime.now(UTC), set(self.accepted)
            lags = await asyncio.gather(
                asyncio.to_thread(uncommitted, kafka, self._workers.app_id),
                asyncio.to_thread(uncommitted, kafka, self._sinks.s3_group, PHOTO_VARIANTS),
            )
            self._uncommitted_then = sum(lags)
            if self._uncommitted_then or time.monotonic() > deadline:
                return

    def counts(self) -> dict[str, int]:
        """Call once every upload is done: what the fault hit."""
        assert self._moment is not None, "strike() was never called"
        ready = self._ready()
        late = {u for u in self._accepted_then if u not in ready or ready[u] > self._moment}
        return {"in flight at the fault": len(late), "uncommitted at the fault": self._uncommitted_then}


async def restart_after(local_stack, server: str, in_flight: InFlight, *, delay: float = 2, down_for: float) -> float:
    """Stop one server of the stack a moment into the stream, start it again; returns when it went down.

    Fails unless the server really stopped (the stack's own report, then its status: down).
    """
    await asyncio.sleep(delay)
    await in_flight.strike()
    down_at = time.monotonic()
    report = await asyncio.to_thread(local_stack.stack.down, {server})
    assert report, f"{server} is not one of this stack's servers"
    assert all(s.state is State.STOPPED for s in report), f"{server} did not stop: {report}"
    status = await asyncio.to_thread(local_stack.stack.status)
    assert all(s.state is State.DOWN for s in status if s.name.split("-")[0] == server), status
    await asyncio.sleep(down_for)
    await asyncio.to_thread(local_stack.stack.up)
    return down_at


async def timed_uploads(
    gateway, key: str, paths: list, in_flight: InFlight, url: str | None = None
) -> tuple[list[str], float]:
    """``steady_uploads``, and when the last one was answered."""
    uploads = await steady_uploads(gateway, key, paths, url=url, accepted=in_flight.accepted)
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
    in_flight = InFlight(local_stack, workers, sinks, ready_reader, photographer)
    try:
        (uploads, uploads_done_at), s3_down_at = await asyncio.gather(
            timed_uploads(gateway, key, paths, in_flight), restart_after(local_stack, "s3", in_flight, down_for=5)
        )
        assert uploads_done_at > s3_down_at, "the outage must fall inside the stream of uploads"
        counts = await check_invariant(gateway, sinks, local_stack, key, photographer, uploads, ready_reader)
        counts |= in_flight.counts()
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
    in_flight = InFlight(local_stack, workers, sinks, ready_reader, photographer)
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
            timed_uploads(gateway, key, paths, in_flight), restart_after(local_stack, "kafka", in_flight, down_for=3)
        )
        assert uploads_done_at > kafka_down_at, "the outage must fall inside the stream of uploads"
        counts = await check_invariant(gateway, sinks, local_stack, key, photographer, uploads, ready_reader)
        counts |= in_flight.counts()
    finally:
        supervisor.cancel()
        ready_reader.close()
        local_stack.stack.up()
    # aiokafka asks again at once for metadata it failed to get, unless streams.aiokafka_backoff makes it pause:
    # without the pause, a worker failed tens of thousands of updates in this outage.
    failed_updates = sum(worker.output().count("Unable to update metadata") for worker in workers.workers)
    print(f"\nKafka restart: {counts} worker restarts={restarts} failed metadata updates={failed_updates}")
    assert_nothing_lost(counts)
    assert failed_updates < 1000
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
    in_flight = InFlight(local_stack, workers, sinks, ready_reader, photographer)
    port = free_port()
    env = gateway_env(local_stack, sinks, port)

    def gateway(index: int):
        return start_gateway(env, tmp_path / f"gateway-{index}.log")

    first = gateway(0)
    second = None

    async def crash() -> float:
        nonlocal second
        await asyncio.sleep(2)
        await in_flight.strike()
        killed_at = time.monotonic()
        first.kill()
        await asyncio.sleep(2)
        second = await asyncio.to_thread(gateway, 1)
        return killed_at

    try:
        (uploads, uploads_done_at), killed_at = await asyncio.gather(
            timed_uploads(status_gateway, key, paths, in_flight, url=f"http://127.0.0.1:{port}"), crash()
        )
        assert uploads_done_at > killed_at, "the crash must fall inside the stream of uploads"
        counts = await check_invariant(status_gateway, sinks, local_stack, key, photographer, uploads, ready_reader)
        counts |= in_flight.counts()
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
