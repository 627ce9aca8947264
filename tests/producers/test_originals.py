"""Only the last request holding an original may delete it."""

from __future__ import annotations

import asyncio

import pytest

from photostream.objectstore import MemoryObjectStore, StoreUnavailable
from producers.originals import HeldOriginals


def writer(store: MemoryObjectStore, key: str):
    async def write() -> None:
        await store.put(key, b"original", content_type="image/jpeg")

    return write


def deleter(store: MemoryObjectStore, key: str):
    async def delete() -> None:
        await store.delete(key)

    return delete


async def test_a_lone_failed_request_deletes_its_original():
    held, bucket = HeldOriginals(), MemoryObjectStore()
    await held.store("u", writer(bucket, "k"))
    assert held.holders("u") == 1
    assert await held.discard("u", deleter(bucket, "k"))
    assert await bucket.list_keys("") == []
    assert held.holders("u") == 0
    assert held._entries == {}, "nothing is kept for an id nobody holds"


async def test_a_failed_request_leaves_an_original_another_one_holds():
    held, bucket = HeldOriginals(), MemoryObjectStore()
    await held.store("u", writer(bucket, "k"))
    await held.store("u", writer(bucket, "k"))
    assert not await held.discard("u", deleter(bucket, "k"))
    assert await bucket.list_keys("") == ["k"]
    held.release("u")  # the other one was acknowledged
    assert await bucket.list_keys("") == ["k"]
    assert held._entries == {}


async def test_the_last_of_two_failed_requests_deletes():
    held, bucket = HeldOriginals(), MemoryObjectStore()
    await held.store("u", writer(bucket, "k"))
    await held.store("u", writer(bucket, "k"))
    assert not await held.discard("u", deleter(bucket, "k"))
    assert await held.discard("u", deleter(bucket, "k"))
    assert await bucket.list_keys("") == []


async def test_a_delete_never_lands_between_another_requests_check_and_its_write():
    held, bucket = HeldOriginals(), MemoryObjectStore()
    await held.store("u", writer(bucket, "k"))
    started = asyncio.Event()

    async def slow_delete() -> None:
        started.set()
        await asyncio.sleep(0.05)  # the other request arrives meanwhile
        await bucket.delete("k")

    discarding = asyncio.create_task(held.discard("u", slow_delete))
    await started.wait()
    await held.store("u", writer(bucket, "k"))  # waits for the delete, then writes again
    assert await discarding
    assert await bucket.list_keys("") == ["k"]
    assert held.holders("u") == 1


async def test_a_failed_write_still_holds_until_discarded():
    held, bucket = HeldOriginals(), MemoryObjectStore()
    bucket.fail_with(StoreUnavailable("S3 down"), "put")
    with pytest.raises(StoreUnavailable, match="S3 down"):
        await held.store("u", writer(bucket, "k"))
    assert held.holders("u") == 1
    deleted = []

    async def delete() -> None:
        deleted.append(True)

    assert await held.discard("u", delete)
    assert deleted == [True]
    assert held._entries == {}


async def test_a_failing_delete_still_ends_the_hold():
    held, bucket = HeldOriginals(), MemoryObjectStore()
    await held.store("u", writer(bucket, "k"))
    bucket.fail_with(StoreUnavailable("S3 down"), "delete")
    with pytest.raises(StoreUnavailable, match="S3 down"):
        await held.discard("u", deleter(bucket, "k"))
    assert held._entries == {}
    assert await bucket.list_keys("") == ["k"]
