"""One set of behaviour tests for every ``Store``: the S3 adapter on the local SeaweedFS, and the memory store.

The memory store stands in for S3 in the unit and component tests, so it must not drift from
it: each test here runs against both (the S3 run is marked ``integration``). What only the
memory store has (injected failures, inspection) is tested at the end.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from photostream.objectstore import (
    MIN_PART_BYTES,
    AlreadyExists,
    ConditionFailed,
    MemoryObjectStore,
    ObjectMissing,
    ObjectStore,
    Store,
    StoreError,
    StoreUnavailable,
)


@pytest.fixture(params=["memory", pytest.param("s3", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryObjectStore()
        return
    real = ObjectStore(request.getfixturevalue("local_stack").s3)
    yield real
    await real.close()


@pytest.fixture
async def prefix(store: Store, unique_name) -> AsyncIterator[str]:
    """A folder of this test's own in the (possibly shared) bucket, emptied afterwards."""
    folder = f"tests/{unique_name('contract')}/"
    yield folder
    for key in await store.list_keys(folder):
        await store.delete(key)


async def test_an_object_reads_back_with_its_size_and_lowercase_metadata(store, prefix):
    key = prefix + "a.bin"
    await store.put(key, bytearray(b"hello"), content_type="text/plain", metadata={"Upload-ID": "u1"})
    assert await store.get(key) == b"hello"
    assert await store.head(key) == (5, {"upload-id": "u1"})
    assert await store.exists(key)


async def test_a_missing_object_is_object_missing_everywhere_but_exists_and_delete(store, prefix):
    key = prefix + "gone"
    for read in (store.get(key), store.head(key), store.get_json(key), store.read_into(key, lambda _: None)):
        with pytest.raises(ObjectMissing):
            await read
    assert not await store.exists(key)
    await store.delete(key)  # no error


async def test_a_put_replaces_unless_it_is_create_only(store, prefix):
    key = prefix + "k"
    await store.put(key, b"one", content_type="text/plain")
    await store.put(key, b"two", content_type="text/plain")
    with pytest.raises(AlreadyExists):
        await store.put(key, b"three", content_type="text/plain", if_none_match=True)
    assert await store.get(key) == b"two"
    await store.put(prefix + "free", b"four", content_type="text/plain", if_none_match=True)
    assert await store.get(prefix + "free") == b"four"


async def test_a_body_that_does_not_match_its_sha256_is_refused_and_not_stored(store, prefix):
    with pytest.raises(StoreError) as refused:
        await store.put(prefix + "bad", b"x", content_type="text/plain", sha256=hashlib.sha256(b"y").digest())
    assert type(refused.value) is StoreError
    assert not refused.value.retriable
    assert not await store.exists(prefix + "bad")
    await store.put(prefix + "good", b"x", content_type="text/plain", sha256=hashlib.sha256(b"x").digest())
    assert await store.get(prefix + "good") == b"x"


async def test_json_records_round_trip_and_can_be_create_only(store, prefix):
    key = prefix + "r.json"
    await store.put_json(key, {"b": 1, "a": [1, "x"]}, if_none_match=True)
    assert await store.get_json(key) == {"a": [1, "x"], "b": 1}
    assert await store.get(key) == b'{"a":[1,"x"],"b":1}'
    with pytest.raises(AlreadyExists):
        await store.put_json(key, {"other": True}, if_none_match=True)
    assert await store.get_json(key) == {"a": [1, "x"], "b": 1}


async def test_a_write_conditional_on_an_etag_fails_once_the_object_changed(store, prefix):
    key = prefix + "state.json"
    etag = await store.put_json(key, {"v": 1})
    assert await store.get_json_versioned(key) == ({"v": 1}, etag)
    newer = await store.put_json(key, {"v": 2}, if_match=etag)
    with pytest.raises(ConditionFailed):
        await store.put_json(key, {"v": 3}, if_match=etag)
    assert await store.get_json_versioned(key) == ({"v": 2}, newer)
    with pytest.raises(ConditionFailed):
        await store.put_json(prefix + "absent.json", {"v": 1}, if_match=etag)
    assert not await store.exists(prefix + "absent.json")


async def test_the_first_bytes_of_an_object_come_with_its_whole_size(store, prefix):
    body = bytes(range(256)) * 40
    await store.put(prefix + "long", body, content_type="application/octet-stream")
    await store.put(prefix + "short", body[:5], content_type="application/octet-stream")
    assert await store.get_head(prefix + "long", 16) == (len(body), body[:16])
    assert await store.get_head(prefix + "short", 16) == (5, body[:5])
    with pytest.raises(ObjectMissing):
        await store.get_head(prefix + "gone", 16)


async def test_keys_with_spaces_plus_signs_and_non_ascii_are_one_key_to_every_operation(store, prefix):
    key = prefix + "a b+c/é~(1).json"
    await store.put_json(key, {"ok": True})
    assert await store.list_keys(prefix) == [key]
    assert await store.get_json(key) == {"ok": True}
    assert (await store.head(key))[0] == len(b'{"ok":true}')
    await store.copy(key, key + ".copy")
    assert await store.get(key + ".copy") == b'{"ok":true}'
    await store.delete(key)
    assert await store.list_keys(prefix) == [key + ".copy"]


async def test_keys_are_listed_sorted_and_counted_under_their_prefix_only(store, prefix):
    for name in ("b/2", "a", "b/1", "c"):
        await store.put(prefix + name, b"", content_type="text/plain")
    await store.put(prefix.rstrip("/") + "-sibling", b"", content_type="text/plain")
    try:
        assert await store.list_keys(prefix) == [prefix + name for name in ("a", "b/1", "b/2", "c")]
        assert await store.count(prefix + "b/") == 2
        assert await store.list_keys(prefix + "none/") == []
        assert await store.count(prefix + "none/") == 0
        await store.delete(prefix + "a")
        assert await store.list_keys(prefix) == [prefix + name for name in ("b/1", "b/2", "c")]
    finally:
        await store.delete(prefix.rstrip("/") + "-sibling")


async def test_a_copy_keeps_bytes_and_metadata_and_a_missing_source_is_object_missing(store, prefix):
    await store.put(prefix + "src", b"data", content_type="image/jpeg", metadata={"variant": "web"})
    await store.copy(prefix + "src", prefix + "dst")
    assert await store.get(prefix + "dst") == b"data"
    assert await store.head(prefix + "dst") == (4, {"variant": "web"})
    with pytest.raises(ObjectMissing):
        await store.copy(prefix + "nothing", prefix + "dst2")
    assert not await store.exists(prefix + "dst2")


async def test_read_into_streams_bounded_chunks_off_the_event_loop(store, prefix):
    data = os.urandom(300_000)
    await store.put(prefix + "big", data, content_type="application/octet-stream")
    loop_thread, threads, chunks = threading.get_ident(), set(), []

    def write(chunk: bytes) -> None:
        threads.add(threading.get_ident())
        chunks.append(chunk)

    assert await store.read_into(prefix + "big", write, chunk_bytes=64 * 1024) == len(data)
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= 64 * 1024
    assert loop_thread not in threads


async def test_an_error_from_the_writer_comes_out_as_it_is(store, prefix):
    await store.put(prefix + "x", b"x" * 10, content_type="application/octet-stream")

    def full(_chunk: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await store.read_into(prefix + "x", full)


async def test_a_multipart_upload_is_invisible_until_completed(store, prefix):
    key = prefix + "mp"
    first, last = os.urandom(MIN_PART_BYTES), os.urandom(1000)
    upload = await store.start_multipart(key, content_type="image/jpeg")
    upload = await store.upload_part(upload, bytearray(first))
    upload = await store.upload_part(upload, last)
    assert [part["PartNumber"] for part in upload.parts] == [1, 2]
    assert not await store.exists(key)
    assert await store.list_keys(prefix) == []
    await store.complete_multipart(upload)
    assert await store.get(key) == first + last
    assert (await store.head(key))[0] == len(first) + len(last)


async def test_parts_under_the_minimum_cannot_be_completed(store, prefix):
    key = prefix + "small"
    upload = await store.start_multipart(key, content_type="image/jpeg")
    upload = await store.upload_part(upload, b"a" * 100)
    upload = await store.upload_part(upload, b"b" * 100)
    with pytest.raises(StoreError) as refused:
        await store.complete_multipart(upload)
    assert not refused.value.retriable
    assert not await store.exists(key)
    await store.abort_multipart(upload)


async def test_an_aborted_upload_takes_no_more_parts_and_cannot_complete(store, prefix):
    upload = await store.start_multipart(prefix + "ab", content_type="image/jpeg")
    upload = await store.upload_part(upload, b"a" * 100)
    await store.abort_multipart(upload)
    with pytest.raises(ObjectMissing):
        await store.upload_part(upload, b"b")
    with pytest.raises(ObjectMissing):
        await store.complete_multipart(upload)
    assert not await store.exists(prefix + "ab")


async def test_leftovers_are_the_objects_and_open_uploads_under_a_prefix_with_when_they_were_written(store, prefix):
    before = datetime.now(UTC) - timedelta(seconds=5)  # server clocks round to the second
    await store.put(prefix + "staged", b"x", content_type="image/jpeg")
    await store.put(prefix.rstrip("/") + "-beside/other", b"y", content_type="image/jpeg")
    await store.start_multipart(prefix + "open", content_type="image/jpeg")
    done = await store.start_multipart(prefix + "aborted", content_type="image/jpeg")
    await store.abort_multipart(done)
    try:
        found = sorted(await store.leftovers(prefix), key=lambda leftover: leftover.key)
        assert [(leftover.key, leftover.upload is not None) for leftover in found] == [
            (prefix + "open", True),
            (prefix + "staged", False),
        ]
        assert all(before <= leftover.written <= datetime.now(UTC) + timedelta(seconds=5) for leftover in found)
        assert found[0].upload is not None
        await store.abort_multipart(found[0].upload)  # what is listed can be aborted by it
        assert [leftover.key for leftover in await store.leftovers(prefix)] == [prefix + "staged"]
    finally:
        await store.delete(prefix.rstrip("/") + "-beside/other")
        for leftover in await store.leftovers(prefix):
            if leftover.upload is not None:
                await store.abort_multipart(leftover.upload)


async def test_presigned_urls_name_the_key_and_the_expiry(store, prefix):
    url = store.presign_get(prefix + "web.webp", 120)
    assert f"{prefix}web.webp" in url
    assert "X-Amz-Expires=120" in url


async def test_a_bucket_that_answers_pings(store):
    await store.ping()


# -- what only the memory store has --------------------------------------------------


async def test_an_injected_outage_fails_every_operation_until_healed():
    store = MemoryObjectStore()
    await store.put("k", b"v", content_type="text/plain")
    store.fail_with(StoreUnavailable("S3 unreachable (test)"))
    for call in (store.ping(), store.get("k"), store.get_json("k"), store.exists("k"), store.delete("k")):
        with pytest.raises(StoreUnavailable):
            await call
    store.fail_with(None)
    assert await store.get("k") == b"v"


async def test_an_outage_can_hit_named_operations_only():
    store = MemoryObjectStore()
    store.fail_with(StoreUnavailable("delete refused (test)"), "delete")
    await store.put_json("k", {"a": 1})
    with pytest.raises(StoreUnavailable):
        await store.delete("k")
    assert await store.get_json("k") == {"a": 1}
    with pytest.raises(ValueError, match="no such operation"):
        store.fail_with(StoreUnavailable("x"), "put_jsn")


async def test_the_memory_store_shows_what_was_stored_with_an_object_and_open_uploads():
    store = MemoryObjectStore(min_part_bytes=0)
    digest = hashlib.sha256(b"x").digest()
    await store.put("v", b"x", content_type="image/webp", cache_control="immutable", metadata={"A": "1"}, sha256=digest)
    shown = store.stored("v")
    assert (shown.body, shown.content_type, shown.cache_control) == (b"x", "image/webp", "immutable")
    assert (shown.metadata, shown.sha256) == ({"a": "1"}, digest)
    upload = await store.upload_part(await store.start_multipart("incoming/p/1", content_type="image/png"), b"ab")
    assert store.open_uploads("incoming/") == ["incoming/p/1"]
    await store.complete_multipart(upload)
    assert store.open_uploads() == []
    assert store.stored("incoming/p/1").content_type == "image/png"
    with pytest.raises(ObjectMissing):
        store.stored("nothing")
