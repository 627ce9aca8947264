"""The gateway killed -9 while large uploads stream in: clients retry, nothing acknowledged is lost.

A kill between requests proves nothing, so the test kills the gateway only once it holds a spool
file (bytes of a 20+ MB file arriving, not yet stored), counts them, and checks at the end that
every acknowledged upload completed once, that the bucket holds exactly one original per
acknowledged upload and nothing else under the photographer's prefix, and that the cut requests
left nothing on the gateway's disk (its spool files have no name) and nothing in S3 that the
staging sweep does not remove.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from photostream.clients import s3_client
from photostream.objectstore import STAGING_PREFIX, ObjectStore
from photostream.samples import sample_photo
from producers.staging_sweep import sweep
from producers.upload import Uploader
from schemas.topics import PHOTO_READY
from tests.integration.test_faults import check_invariant, gateway_env
from tests.processes import free_port, start_gateway
from tests.streams.workers import OutputReader

pytestmark = pytest.mark.integration

FILES = 4
SIZE = 22 * 1024 * 1024


def large_jpeg(seed: int, size: int = SIZE) -> bytes:
    """A real JPEG of ``size`` bytes: a camera-sized photo padded with APP15 segments, as some cameras pad."""
    photo = sample_photo(seed, size=(1600, 1200))
    segment = 65533
    padding = bytearray()
    while len(photo) + len(padding) + segment + 4 <= size:
        padding += b"\xff\xef" + struct.pack(">H", segment + 2) + os.urandom(segment)
    return photo[:2] + bytes(padding) + photo[2:]


def files_held_in(pid: int, directory: Path) -> int:
    """How many files process ``pid`` holds open in ``directory`` (an unnamed one shows as ``#inode (deleted)``)."""
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed while the list was read
        held += Path(link.removesuffix(" (deleted)")).parent == directory
    return held


def originals_of(local_stack, photographer: str) -> list[str]:
    client = s3_client(local_stack.s3)
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=local_stack.s3.bucket, Prefix=f"originals/{photographer}/"
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.mark.timeout(600)
async def test_gateway_killed_while_large_uploads_stream_in(
    make_gateway, workers, sinks, local_stack, unique_name, tmp_path
):
    status_gateway = await make_gateway()
    photographer = unique_name("ph")
    key = await status_gateway.services.keys.create(photographer)
    sinks.start()
    workers.start()
    ready_reader = OutputReader(local_stack.kafka, [PHOTO_READY])
    folder = tmp_path / "large"
    folder.mkdir()
    paths = []
    for index in range(FILES):
        path = folder / f"{index:02d}.jpg"
        path.write_bytes(large_jpeg(index))
        paths.append(path)
    port = free_port()
    spool = tmp_path / "spool"
    spool.mkdir()
    env = gateway_env(local_stack, sinks, port) | {"GATEWAY_SPOOL_DIR": str(spool)}

    def gateway(index: int):
        return start_gateway(env, tmp_path / f"gateway-{index}.log")

    first = gateway(0)
    second = None
    in_flight_at_kill = 0

    async def kill_mid_request() -> None:
        nonlocal second, in_flight_at_kill
        deadline = time.monotonic() + 120
        # A file beyond one part waits in a spool file until its hash names its key: bytes received, not stored.
        while (in_flight_at_kill := files_held_in(first.process.pid, spool)) == 0:
            assert time.monotonic() < deadline, "no upload was ever spooled"
            await asyncio.sleep(0.05)
        first.kill()
        await asyncio.sleep(1)
        second = await asyncio.to_thread(gateway, 1)

    uploader = Uploader(f"http://127.0.0.1:{port}", key, parallel=2, attempts=40)
    try:
        # Both run to their end before the cleanup below, even if one fails: a second gateway started after it would
        # outlive the test.
        outcomes, killed = await asyncio.gather(uploader.upload(paths), kill_mid_request(), return_exceptions=True)
        for result in (outcomes, killed):
            if isinstance(result, BaseException):
                raise result
        assert isinstance(outcomes, list)
        accepted = [o.upload_id for o in outcomes if o.upload_id]
        counts = await check_invariant(status_gateway, sinks, local_stack, key, photographer, accepted, ready_reader)
    finally:
        ready_reader.close()
        first.kill()
        if second is not None:
            second.stop()
    # What the kill left in the staging area (a pending marker, if it cut a request between the marker and the
    # original's PUT), and what the gateways' staging sweep removes once it is old enough (here: at once).
    staging = f"{STAGING_PREFIX}{photographer}/"
    store = ObjectStore(local_stack.s3)
    try:
        left_by_the_kill = len(await store.leftovers(staging))
        ledger = status_gateway.services.ledger

        async def acknowledged(upload_id: str) -> bool:
            return await ledger.find(upload_id) is not None

        later = datetime.now(UTC) + timedelta(seconds=5)  # S3 keeps whole seconds
        swept = await sweep(store, older_than=timedelta(0), acknowledged=acknowledged, prefix=staging, now=later)
        left_after_the_sweep = len(await store.leftovers(staging))
    finally:
        await store.close()
    originals = originals_of(local_stack, photographer)
    counts |= {
        "spooled at the kill": in_flight_at_kill,
        "originals in the bucket": len(originals),
        "staged leftovers": left_by_the_kill,
        "swept": swept.objects + swept.uploads,
        "orphans swept": swept.orphans,
    }
    print(f"\ngateway kill -9 mid-request ({SIZE // 2**20} MB files): {counts}")
    assert in_flight_at_kill > 0
    assert counts["acknowledged"] == FILES
    assert counts["completed"] == FILES
    assert counts["lost"] == counts["failed"] == counts["doubled"] == 0
    assert counts["missing variants"] == 0
    assert sorted(originals) == sorted(set(originals))
    assert len(originals) == FILES, originals
    assert list(spool.iterdir()) == [], "a spool file has no name: a killed gateway leaves none behind"
    assert left_after_the_sweep == 0
    assert swept.orphans == 0, "every original the sweep found a marker of was acknowledged by a retry"
    assert len(originals_of(local_stack, photographer)) == FILES
