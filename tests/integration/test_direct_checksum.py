"""A direct upload whose bytes are not the declared ones fails as checksum_mismatch, end to end."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest

from producers.ledger import original_key
from tests.gateway_client import auth
from tests.streams.imaging.photos import make_photo

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
async def test_bytes_other_than_declared_fail_the_upload_as_checksum_mismatch(
    make_gateway, workers, sinks, unique_name
):
    gateway = await make_gateway()
    sinks.start()
    workers.start()
    name = unique_name("ph")
    key = await gateway.services.keys.create(name)
    photo = make_photo(seed=31, width=640, height=480)
    declared = {"filename": "a.jpg", "size": len(photo), "sha256": hashlib.sha256(photo).hexdigest()}
    answer = await (await gateway.post("/v1/uploads/direct", json=declared, headers=auth(key))).json()
    assert httpx.put(answer["url"], content=photo, headers=answer["headers"]).status_code == 200
    # A store that does not check checksums (or a part of a multipart upload) lets other bytes in:
    # here they replace the uploaded ones, same length, still a JPEG.
    other = bytearray(photo)
    other[len(other) // 2] ^= 0xFF
    placed = original_key(name, answer["upload_id"])
    await gateway.services.store.put(placed, bytes(other), content_type="application/octet-stream")

    done = await gateway.post(f"/v1/uploads/{answer['upload_id']}/complete", headers=auth(key))
    assert done.status == 202, await done.text()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = await (await gateway.get(f"/v1/uploads/{answer['upload_id']}", headers=auth(key))).json()
        if status["status"] != "queued":
            break
        await asyncio.sleep(0.5)
    assert status["status"] == "failed", (status, workers.logs())
    assert status["error"]["code"] == "checksum_mismatch", status
    assert hashlib.sha256(bytes(other)).hexdigest() in status["error"]["detail"]
