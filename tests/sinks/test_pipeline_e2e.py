"""N uploads through the gateway end as N images in ClickHouse, their variants in S3 and ImageReady events.

Everything is real: gateways in process, a worker and the sinks as processes, Kafka, S3 and
the embedded ClickHouse, which the gateways and `photostream sql` read through the sinks.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from photostream.objectstore import ObjectStore
from schemas.events import ImageReady
from schemas.topics import PHOTO_READY
from sinks.s3 import variant_key
from tests.gateway_client import auth
from tests.processes import free_port
from tests.streams.uploads import photo, upload
from tests.streams.workers import OutputReader

pytestmark = pytest.mark.integration

DB = "photostream"


async def wait_for_statuses(gateway, keys: dict[str, str], ids: dict[str, str], timeout: float = 180) -> dict:
    """Poll GET /v1/uploads/{id} until no upload is queued; returns the last bodies by id."""
    deadline = time.monotonic() + timeout
    bodies: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for upload_id, photographer in ids.items():
            if bodies.get(upload_id, {}).get("status") in {"completed", "failed"}:
                continue
            response = await gateway.get(f"/v1/uploads/{upload_id}", headers=auth(keys[photographer]))
            if response.status == 200:
                bodies[upload_id] = await response.json()
        if len(bodies) == len(ids) and all(b["status"] != "queued" for b in bodies.values()):
            return bodies
        await asyncio.sleep(1)
    return bodies


async def test_uploads_end_as_images_variants_ready_events_and_throughput(
    make_gateway, workers, sinks, local_stack, unique_name
):
    first_gateway, second_gateway = await make_gateway(), await make_gateway()
    photographers = [unique_name("ph"), unique_name("ph")]
    keys = {p: await first_gateway.services.keys.create(p) for p in photographers}
    ready_reader = OutputReader(local_stack.kafka, [PHOTO_READY])
    sinks.start()
    workers.start()
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    broken: set[str] = set()
    for index, photographer in enumerate(photographers):
        files = [(f"{i}.jpg", photo(100 * index + i, size=(900, 600))) for i in range(3)]
        if index == 0:
            files.append(("copy.jpg", photo(0, size=(900, 600), quality=70)))  # a re-encode of 0.jpg
        if index == 1:
            files.append(("broken.jpg", photo(999)[:4000]))
        for item in await upload(first_gateway, keys[photographer], *files):
            ids[item["upload_id"]] = photographer
            names[item["filename"] + photographer] = item["upload_id"]
            if item["filename"] == "broken.jpg":
                broken.add(item["upload_id"])
    completed_ids = [upload_id for upload_id in ids if upload_id not in broken]
    n_completed = len(completed_ids)

    # Status through the OTHER gateway instance: both read the same pipeline state.
    bodies = await wait_for_statuses(second_gateway, keys, ids)
    assert all(b["status"] != "queued" for b in bodies.values()), sinks.logs() + workers.logs()
    statuses = {upload_id: body["status"] for upload_id, body in bodies.items()}
    assert sorted(statuses.values()) == ["completed"] * n_completed + ["failed"]
    failed = next(body for body in bodies.values() if body["status"] == "failed")
    assert failed["error"]["code"] == "corrupt"
    done = next(body for body in bodies.values() if body["status"] == "completed")
    assert done["metadata"]["width"] == 900
    assert done["metadata"]["camera_make"] == "Canon"
    assert sorted((v["name"], v["format"]) for v in done["variants"]) == [
        ("square", "webp"),
        ("thumb", "jpeg"),
        ("thumb", "webp"),
        ("web", "jpeg"),
        ("web", "webp"),
    ]
    copy = bodies[names["copy.jpg" + photographers[0]]]
    assert copy["duplicate_of"] == names["0.jpg" + photographers[0]]
    assert "duplicate_of" not in bodies[names["0.jpg" + photographers[0]]]
    web = next(v for v in done["variants"] if (v["name"], v["format"]) == ("web", "jpeg"))
    fetched = httpx.get(web["url"], timeout=10)
    assert fetched.status_code == 200
    assert len(fetched.content) == web["bytes"]
    assert fetched.headers["cache-control"] == "public, max-age=31536000, immutable"

    # ImageReady: one per completed image (deduplicated by event id), carrying the documented keys.
    try:
        assert ready_reader.poll_until(
            lambda r: len({e.upload_id for e in r.of(PHOTO_READY, set(photographers))}) >= n_completed, timeout=60
        )
        ready_events = [e for e in ready_reader.of(PHOTO_READY, set(photographers)) if isinstance(e, ImageReady)]
    finally:
        ready_reader.close()
    by_id = {e.event_id: e for e in ready_events}
    assert {str(e.upload_id) for e in by_id.values()} == set(completed_ids)
    store = ObjectStore(local_stack.s3)
    try:
        for event in by_id.values():
            for variant in event.variants:
                assert variant.key == variant_key(
                    event.photographer_id, event.upload_id, event.received_at, variant.variant, variant.format
                )
                size, _meta = await store.head(variant.key)
                assert size == variant.bytes
    finally:
        await store.close()
    # ClickHouse as an analyst sees it.
    reader = sinks.reader()
    try:
        where = "photographer_id IN {photographers:Array(String)}"
        params = {"photographers": photographers}
        images = await reader.query(f"SELECT count() FROM {DB}.images FINAL WHERE {where}", params)
        assert images.rows[0][0] == n_completed
        variants = await reader.query(f"SELECT count() FROM {DB}.variants FINAL WHERE {where}", params)
        assert variants.rows[0][0] == 5 * n_completed
        throughput = await reader.query(
            f"SELECT sum(images), sum(failures), sum(uploads) FROM {DB}.throughput_per_minute WHERE {where}", params
        )
        assert throughput.rows[0] == (n_completed, 1, len(ids))
    finally:
        await reader.close()


def sql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `photostream sql ARGS...` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "photostream", "sql", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sql_command_reads_through_the_running_sinks_and_refuses_writes(sinks):
    sinks.start()
    env = sinks.env
    result = sql(env, f"SELECT name FROM system.tables WHERE database = '{DB}'")
    assert result.returncode == 0, result.stderr
    assert "images" in result.stdout
    assert "throughput_per_minute" in result.stdout
    as_json = sql(env, "--format", "json", "SELECT 1 AS one, 'x' AS letter")
    assert json.loads(as_json.stdout) == [{"one": 1, "letter": "x"}]
    as_csv = sql(env, "--format", "csv", "SELECT 1 AS one, 'x' AS letter")
    assert as_csv.stdout.strip().splitlines() == ["one,letter", "1,x"]
    write = sql(env, f"DROP TABLE {DB}.images")
    assert write.returncode != 0
    assert "refused" in write.stderr
    still_there = sql(
        env, "--format", "csv", f"SELECT count() FROM system.tables WHERE database = '{DB}' AND name = 'images'"
    )
    assert still_there.stdout.strip().splitlines()[-1] == "1"


def test_sql_command_opens_the_embedded_engine_itself_when_the_sinks_are_stopped(tmp_path):
    env = {
        **os.environ,
        "CLICKHOUSE_DSN": f"chdb://{tmp_path / 'clickhouse'}",
        "CLICKHOUSE_QUERY_URL": f"http://127.0.0.1:{free_port()}",
    }
    result = sql(env, "--format", "csv", "SELECT 40 + 2 AS answer")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["answer", "42"]
