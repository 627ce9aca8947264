"""Real tus clients (tuspy, tus-js-client under Node) against two gateway processes on the local stack.

Each uploads a 30 MB photo in 5 MB chunks through a proxy that cuts the connection in the middle
of a chunk, then resumes from the server's offset through the other gateway. The original in S3
must be the source byte for byte, announced by exactly one ``UploadReceived``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from photostream.objectstore import ObjectStore
from photostream.topics import ensure_topics
from producers.keys import create_keys
from producers.ledger import original_key
from tests.cutting_proxy import CuttingProxy
from tests.processes import free_port, start_gateway
from tests.producers.test_gateway import consume_uploads, noisy_jpeg
from tests.tools import npm_ci, require

pytestmark = pytest.mark.integration

CHUNK = 5 * 1024 * 1024
JS_CLIENT = Path(__file__).parents[1] / "tus"


def gateway_env(local_stack, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.bootstrap_servers,
        "S3_ENDPOINT_URL": local_stack.s3.endpoint_url,
        "GATEWAY_PORT": str(port),
        "CLICKHOUSE_QUERY_URL": f"http://127.0.0.1:{free_port()}",
    }


@pytest.fixture
def two_gateways(local_stack, tmp_path) -> Iterator[tuple[str, str]]:
    ensure_topics(local_stack.kafka)
    ports = free_port(), free_port()
    processes = [
        start_gateway(gateway_env(local_stack, port), tmp_path / f"gateway-{index}.log")
        for index, port in enumerate(ports)
    ]
    yield tuple(f"http://127.0.0.1:{port}" for port in ports)
    for process in processes:
        process.stop()
        assert "Traceback" not in process.output(), process.output()


@pytest.fixture
def photo_file(tmp_path) -> Path:
    path = tmp_path / "DSC_0420.JPG"
    path.write_bytes(noisy_jpeg(39))  # random pixels at quality 95: about 30 MB
    assert 28 * 1024 * 1024 < path.stat().st_size < 40 * 1024 * 1024
    return path


@pytest.fixture
def photographer(local_stack, unique_name) -> tuple[str, str]:
    name = unique_name("tus")
    return name, asyncio.run(create_keys(local_stack.s3, [name]))[name]


def server_offset(base: str, path: str, key: str) -> int:
    """The offset the gateway has once the cut request's handler has saved it (it settles in milliseconds)."""
    seen = []
    for _ in range(50):
        response = httpx.head(f"{base}{path}", headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        seen.append(int(response.headers["Upload-Offset"]))
        if len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]:
            return seen[-1]
        threading.Event().wait(0.1)
    raise AssertionError(f"the offset never settled: {seen}")


def check_cut_mid_chunk(offset: int, size: int) -> None:
    # Two chunks went whole; the third was cut after about half its bytes, which the server kept.
    assert 2 * CHUNK < offset < 3 * CHUNK, offset
    assert offset < size


def check_stored_once(local_stack, name: str, upload_id: str, source: Path) -> None:
    async def read() -> bytes:
        store = ObjectStore(local_stack.s3)
        try:
            return await store.get(original_key(name, upload_id))
        finally:
            await store.close()

    stored = asyncio.run(read())
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
    events = consume_uploads(local_stack.kafka.bootstrap_servers, name, 1)
    assert [str(event.upload_id) for event in events] == [upload_id]  # one event: no loss, no double


def test_tuspy_resumes_a_cut_upload_through_another_gateway(local_stack, two_gateways, photo_file, photographer):
    first, second = two_gateways
    name, key = photographer
    proxy = CuttingProxy(int(first.rsplit(":", 1)[1]), cut_after=2 * CHUNK + CHUNK // 2)
    try:
        client = TusClient(f"http://127.0.0.1:{proxy.port}/v1/tus/", headers={"Authorization": f"Bearer {key}"})
        with photo_file.open("rb") as stream:  # tuspy leaves a file it opened itself unclosed
            uploader = client.uploader(file_stream=stream, chunk_size=CHUNK, metadata={"filename": photo_file.name})
            with pytest.raises(Exception):  # noqa: B017, PT011 - whatever requests raises for a cut connection
                uploader.upload()
        assert proxy.cut.is_set()
    finally:
        proxy.close()
    path = "/v1/tus/" + uploader.url.rsplit("/v1/tus/", 1)[1]
    offset = server_offset(second, path, key)
    check_cut_mid_chunk(offset, photo_file.stat().st_size)

    with photo_file.open("rb") as stream:
        resumed = TusClient(f"{second}/v1/tus/", headers={"Authorization": f"Bearer {key}"}).uploader(
            file_stream=stream, url=f"{second}{path}", chunk_size=CHUNK, upload_checksum=True
        )
        assert resumed.offset == offset  # tuspy asked the server where to go on from
        resumed.upload()
    upload_id = resumed.request.response_headers["photostream-upload-id"]
    check_stored_once(local_stack, name, upload_id, photo_file)


def run_js_client(env: dict[str, str]) -> dict:
    run = subprocess.run(
        ["node", "upload.js"], cwd=JS_CLIENT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"tus-js-client printed nothing:\n{run.stdout}\n{run.stderr}"
    return json.loads(lines[-1])


def test_tus_js_client_resumes_a_cut_upload_through_another_gateway(
    local_stack, two_gateways, photo_file, photographer
):
    require("node", "npm")
    npm_ci(JS_CLIENT)
    first, second = two_gateways
    name, key = photographer
    proxy = CuttingProxy(int(first.rsplit(":", 1)[1]), cut_after=2 * CHUNK + CHUNK // 2)
    env = {"API_KEY": key, "FILE": str(photo_file), "CHUNK_SIZE": str(CHUNK)}
    try:
        cut = run_js_client({**env, "ENDPOINT": f"http://127.0.0.1:{proxy.port}/v1/tus/"})
        assert cut["result"] == "error", cut
        assert proxy.cut.is_set()
    finally:
        proxy.close()
    path = "/v1/tus/" + cut["url"].rsplit("/v1/tus/", 1)[1]
    check_cut_mid_chunk(server_offset(second, path, key), photo_file.stat().st_size)

    done = run_js_client({**env, "ENDPOINT": f"{second}/v1/tus/", "UPLOAD_URL": f"{second}{path}"})
    assert done["result"] == "success", done
    assert done["existing"] is False
    check_stored_once(local_stack, name, done["upload_id"], photo_file)
