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


class Publisher:
    """Counts publishes, and answers whether the ledger holds a record as ``recorded`` says."""

    def __init__(self) -> None:
        self.sent, self.lookups, self.recorded = 0, 0, False

    async def publish(self) -> None:
        self.sent += 1

    async def acknowledged(self) -> bool:
        self.lookups += 1
        return self.recorded


async def publish_and_let_go(held: HeldOriginals, upload_id: str, publisher: Publisher) -> bool:
    await held.store(upload_id, writer(MemoryObjectStore(), upload_id))
    try:
        return await held.publish_once(upload_id, publisher.publish, publisher.acknowledged)
    finally:
        held.release(upload_id)


async def test_a_photo_published_and_let_go_is_not_published_again_while_its_record_stands():
    held, publisher = HeldOriginals(), Publisher()
    assert await publish_and_let_go(held, "u", publisher)
    assert held._entries == {}, "the first request let go of it"
    publisher.recorded = True
    assert not await publish_and_let_go(held, "u", publisher)
    assert (publisher.sent, publisher.lookups) == (1, 1)


async def test_a_photo_whose_record_is_gone_is_published_again():
    # Its first publish failed after the event went out, or the photographer deleted it since.
    held, publisher = HeldOriginals(), Publisher()
    assert await publish_and_let_go(held, "u", publisher)
    assert await publish_and_let_go(held, "u", publisher)
    assert publisher.sent == 2


async def test_a_photo_this_process_never_published_is_published_without_a_lookup():
    held, publisher = HeldOriginals(), Publisher()
    publisher.recorded = True  # another gateway instance published it: not this process's to know
    assert await publish_and_let_go(held, "u", publisher)
    assert (publisher.sent, publisher.lookups) == (1, 0)


async def test_only_the_most_recent_publishes_are_remembered(monkeypatch):
    monkeypatch.setattr(HeldOriginals, "RECENTLY_PUBLISHED", 2)
    held, publisher = HeldOriginals(), Publisher()
    for upload_id in ("a", "b", "c"):
        await publish_and_let_go(held, upload_id, publisher)
    publisher.recorded = True
    assert await publish_and_let_go(held, "a", publisher), "forgotten: published without a lookup"
    assert not await publish_and_let_go(held, "c", publisher)
    assert (publisher.sent, publisher.lookups) == (4, 1)
