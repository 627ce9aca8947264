"""Only the last request holding an original may delete it."""

from __future__ import annotations

import asyncio

import pytest

from producers.originals import HeldOriginals


class Bucket:
    def __init__(self) -> None:
        self.objects: set[str] = set()

    def writer(self, key: str):
        async def write() -> None:
            await asyncio.sleep(0)
            self.objects.add(key)

        return write

    def deleter(self, key: str):
        async def delete() -> None:
            await asyncio.sleep(0)
            self.objects.discard(key)

        return delete


async def test_a_lone_failed_request_deletes_its_original():
    held, bucket = HeldOriginals(), Bucket()
    await held.store("u", bucket.writer("k"))
    assert held.holders("u") == 1
    assert await held.discard("u", bucket.deleter("k"))
    assert bucket.objects == set()
    assert held.holders("u") == 0
    assert held._entries == {}, "nothing is kept for an id nobody holds"


async def test_a_failed_request_leaves_an_original_another_one_holds():
    held, bucket = HeldOriginals(), Bucket()
    await held.store("u", bucket.writer("k"))
    await held.store("u", bucket.writer("k"))
    assert not await held.discard("u", bucket.deleter("k"))
    assert bucket.objects == {"k"}
    held.release("u")  # the other one was acknowledged
    assert bucket.objects == {"k"}
    assert held._entries == {}


async def test_the_last_of_two_failed_requests_deletes():
    held, bucket = HeldOriginals(), Bucket()
    await held.store("u", bucket.writer("k"))
    await held.store("u", bucket.writer("k"))
    assert not await held.discard("u", bucket.deleter("k"))
    assert await held.discard("u", bucket.deleter("k"))
    assert bucket.objects == set()


async def test_a_delete_never_lands_between_another_requests_check_and_its_write():
    held, bucket = HeldOriginals(), Bucket()
    await held.store("u", bucket.writer("k"))
    started = asyncio.Event()

    async def slow_delete() -> None:
        started.set()
        await asyncio.sleep(0.05)  # the other request arrives meanwhile
        bucket.objects.discard("k")

    discarding = asyncio.create_task(held.discard("u", slow_delete))
    await started.wait()
    await held.store("u", bucket.writer("k"))  # waits for the delete, then writes again
    assert await discarding
    assert bucket.objects == {"k"}
    assert held.holders("u") == 1


async def test_a_failed_write_still_holds_until_discarded():
    held = HeldOriginals()

    async def refuse() -> None:
        raise OSError("S3 down")

    with pytest.raises(OSError, match="S3 down"):
        await held.store("u", refuse)
    assert held.holders("u") == 1
    deleted = []

    async def delete() -> None:
        deleted.append(True)

    assert await held.discard("u", delete)
    assert deleted == [True]
    assert held._entries == {}


async def test_a_failing_delete_still_ends_the_hold():
    held = HeldOriginals()
    await held.store("u", Bucket().writer("k"))

    async def refuse() -> None:
        raise OSError("S3 down")

    with pytest.raises(OSError, match="S3 down"):
        await held.discard("u", refuse)
    assert held._entries == {}
