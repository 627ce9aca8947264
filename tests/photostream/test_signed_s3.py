"""The S3 adapter's own requests: what a failing or refusing server becomes, and what is tried again.

A stand-in server answers as S3 does when it is busy (503 SlowDown); the real SeaweedFS refuses a
wrong secret. Everything else the adapter sends is covered by the store's contract tests.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from pydantic import SecretStr

from photostream.config import S3Settings
from photostream.objectstore import ObjectMissing, ObjectStore, StoreError, StoreUnavailable
from photostream.signed_s3 import ATTEMPTS
from tests.processes import free_port

SLOW_DOWN = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>Please reduce your rate</Message></Error>"


async def stand_in(aiohttp_server, busy_answers: int):
    """A bucket whose first ``busy_answers`` requests are 503 SlowDown, then 200 with a record."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if len(seen) <= busy_answers:
            return web.Response(status=503, body=SLOW_DOWN, content_type="application/xml")
        return web.Response(body=b'{"ok": true}', content_type="application/json", headers={"ETag": '"e1"'})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)
    return S3Settings(endpoint_url=str(server.make_url("")).rstrip("/")), seen


async def test_a_busy_store_is_tried_again_with_a_fresh_signature(aiohttp_server):
    settings, seen = await stand_in(aiohttp_server, busy_answers=ATTEMPTS - 1)
    store = ObjectStore(settings)
    try:
        assert await store.get_json_versioned("records/a.json") == ({"ok": True}, '"e1"')
    finally:
        await store.close()
    assert len(seen) == ATTEMPTS
    assert all(auth.startswith("AWS4-HMAC-SHA256 Credential=") for auth in seen)


async def test_a_store_busy_for_every_try_is_unavailable(aiohttp_server):
    settings, seen = await stand_in(aiohttp_server, busy_answers=ATTEMPTS)
    store = ObjectStore(settings)
    try:
        with pytest.raises(StoreUnavailable, match="503 SlowDown"):
            await store.get("records/a.json")
    finally:
        await store.close()
    assert len(seen) == ATTEMPTS


async def test_a_store_that_is_not_listening_is_unavailable():
    store = ObjectStore(S3Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout=1))
    try:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.put_json("records/a.json", {"a": 1})
    finally:
        await store.close()


@pytest.mark.integration
async def test_a_wrong_secret_is_refused_for_good_and_the_right_one_signs_every_kind_of_key(local_stack, unique_name):
    wrong = ObjectStore(local_stack.s3.model_copy(update={"secret_access_key": SecretStr("not-the-secret")}))
    try:
        with pytest.raises(StoreError) as refused:
            await wrong.get(f"tests/{unique_name('signed')}/a.json")
    finally:
        await wrong.close()
    assert not refused.value.retriable
    assert not isinstance(refused.value, ObjectMissing)
    store = ObjectStore(local_stack.s3)
    key = f"tests/{unique_name('signed')}/ünï côdé+%20&=?.json"
    try:
        await store.put_json(key, {"signed": True})
        assert await store.get_json(key) == {"signed": True}
        await store.delete(key)
        assert not await store.exists(key)
    finally:
        await store.close()


async def test_a_store_serves_the_event_loop_that_opened_its_connections(aiohttp_server):
    settings, _ = await stand_in(aiohttp_server, busy_answers=0)
    store = ObjectStore(settings)
    try:
        await store.get("records/a.json")
        with pytest.raises(RuntimeError, match="one store per loop"):
            await asyncio.to_thread(asyncio.run, store.get("records/a.json"))  # another thread, another loop
    finally:
        await store.close()
