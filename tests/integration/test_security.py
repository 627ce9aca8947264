"""Doors a hostile client tries: the bucket, presigned URLs, keys at rest, secrets in logs."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import httpx
import pytest

from photostream.config import S3Settings
from photostream.objectstore import ObjectStore
from producers.keys import S3KeyStore, create_keys
from tests.gateway_client import auth
from tests.processes import free_port, start_service
from tests.streams.imaging.photos import make_photo

pytestmark = pytest.mark.integration


async def test_the_bucket_is_not_public(local_stack, unique_name):
    store = ObjectStore(local_stack.s3)
    key = f"originals/{unique_name('ph')}/private.jpg"
    try:
        await store.put(key, b"secret bytes", content_type="image/jpeg")
        anonymous = httpx.get(f"{local_stack.s3.endpoint_url}/{local_stack.s3.bucket}/{key}", timeout=10)
        listing = httpx.get(f"{local_stack.s3.endpoint_url}/{local_stack.s3.bucket}?list-type=2", timeout=10)
    finally:
        await store.delete(key)
        await store.close()
    assert anonymous.status_code in {401, 403}
    assert b"secret bytes" not in anonymous.content
    assert listing.status_code in {401, 403}


async def test_presigned_urls_expire(local_stack, unique_name):
    store = ObjectStore(local_stack.s3)
    key = f"derivatives/{unique_name('ph')}/web.webp"
    try:
        await store.put(key, b"variant bytes", content_type="image/webp")
        # SigV4 dates have one-second resolution: a margin keeps the fresh request inside its window.
        url = store.presign_get(key, expires_in=3)
        fresh = httpx.get(url, timeout=10)
        await asyncio.sleep(5)
        stale = httpx.get(url, timeout=10)
    finally:
        await store.delete(key)
        await store.close()
    assert fresh.status_code == 200
    assert fresh.content == b"variant bytes"
    assert stale.status_code == 403


async def test_api_keys_are_stored_only_as_digests(local_stack, unique_name):
    store = ObjectStore(local_stack.s3)
    try:
        api_key = await S3KeyStore(store).create(unique_name("ph"))
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        (record_key,) = [key for key in await store.list_keys("auth/") if digest in key]
        record = await store.get(record_key)
    finally:
        await store.close()
    assert api_key not in record_key
    assert api_key.encode() not in record


def test_no_secret_reaches_the_gateway_log(local_stack, tmp_path, unique_name):
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.bootstrap_servers,
        "S3_ENDPOINT_URL": local_stack.s3.endpoint_url,
        "GATEWAY_PORT": str(port),
    }
    gateway = start_service(["gateway"], env, tmp_path / "gateway.log")
    try:
        deadline = time.monotonic() + 60
        while "gateway listening" not in gateway.output():
            assert gateway.process.poll() is None, gateway.output()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        keys = asyncio.run(_create_key(local_stack.s3, unique_name("ph")))
        url = f"http://127.0.0.1:{port}/v1/uploads"
        files = {"file": ("a.jpg", make_photo(seed=5, width=64, height=48), "image/jpeg")}
        accepted = httpx.post(url, files=files, headers=auth(keys), timeout=30)
        assert accepted.status_code == 202, accepted.text
        assert httpx.post(url, files=files, headers=auth(keys + "x"), timeout=30).status_code == 401
    finally:
        gateway.stop()
    log = gateway.output()
    assert keys not in log
    assert (keys + "x") not in log
    assert S3Settings().secret_access_key.get_secret_value() not in log


async def _create_key(s3: S3Settings, photographer: str) -> str:
    return (await create_keys(s3, [photographer]))[photographer]
