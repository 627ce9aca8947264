"""Which originals the requests of this process hold, so a failed one deletes only its own.

An original's key is derived from the photographer and the content, so every request
carrying the same photo writes the same object. A request whose event was not
acknowledged deletes the original it stored, but only when no other request of this
process still holds it (that one may be about to publish it); the caller also checks
that the upload was never acknowledged before. Storing and deleting one upload id take
the same lock, so a delete cannot land between another request's checks and its write.

The same count makes two requests with the same photo at once publish it once (``publish_once``),
and a short memory of what this process published covers a twin that read no record just before
the first request saved it and let go. Requests on other gateway instances are not counted here:
see docs/decisions.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from cachetools import LRUCache


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # requests that stored the original and have not released or discarded it
    users: int = 0  # tasks holding or waiting for either lock
    publish_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    published: bool = False  # a request of this process had the upload's event acknowledged while it was held


class HeldOriginals:
    """Per upload id: the requests of this process that hold its original."""

    RECENTLY_PUBLISHED = 4096  # upload ids whose publish is remembered after every request let go of them

    def __init__(self) -> None:
        """Start with nothing held."""
        self._entries: dict[str, _Entry] = {}
        self._recently_published: LRUCache[str, bool] = LRUCache(maxsize=self.RECENTLY_PUBLISHED)

    def holders(self, upload_id: str) -> int:
        """How many requests hold the original of ``upload_id``."""
        entry = self._entries.get(upload_id)
        return entry.holders if entry else 0

    @asynccontextmanager
    async def _locked(self, upload_id: str, *, publishing: bool = False) -> AsyncIterator[_Entry]:
        entry = self._entries.setdefault(upload_id, _Entry())
        entry.users += 1
        try:
            async with entry.publish_lock if publishing else entry.lock:
                yield entry
        finally:
            entry.users -= 1
            self._forget_if_unused(upload_id, entry)

    def _forget_if_unused(self, upload_id: str, entry: _Entry) -> None:
        if entry.users == 0 and entry.holders == 0 and self._entries.get(upload_id) is entry:
            del self._entries[upload_id]

    async def store(self, upload_id: str, write: Callable[[], Awaitable[None]]) -> None:
        """Run ``write`` under the id's lock; the request holds the original from then on.

        It holds it even if ``write`` fails: end the hold with ``release`` or ``discard``.
        """
        async with self._locked(upload_id) as entry:
            entry.holders += 1
            await write()

    async def publish_once(
        self,
        upload_id: str,
        publish: Callable[[], Awaitable[None]],
        acknowledged: Callable[[], Awaitable[bool]],
    ) -> bool:
        """Run ``publish`` unless another request of this process already published the same upload.

        Two requests with the same photo at once (a client's retry of a request still in flight, the same
        file twice in a folder) both find no record when they admit it. Their publishes take turns, so the
        later one learns that the event went out and answers ``existing`` instead of publishing a second
        upload with its own ``received_at``. The caller must hold the original (``store``) meanwhile.

        The later one may also arrive only after the first saved its record and let go of the original,
        which forgets the entry. For an upload this process published recently, ``acknowledged`` (does
        the ledger hold its record?) decides: a record means the event went out; none means it failed or
        the upload was deleted since, and it is published again. Other uploads skip that lookup.

        Returns:
            Whether ``publish`` ran and returned (it may raise; then a twin waiting here publishes itself).
        """
        async with self._locked(upload_id, publishing=True) as entry:
            if entry.published:
                return False
            if upload_id in self._recently_published and await acknowledged():
                return False
            await publish()
            entry.published = True
            self._recently_published[upload_id] = True
            return True

    def release(self, upload_id: str) -> None:
        """End a hold whose upload was acknowledged: the original stays."""
        entry = self._entries.get(upload_id)
        if entry is None or entry.holders == 0:
            return
        entry.holders -= 1
        self._forget_if_unused(upload_id, entry)

    async def discard(self, upload_id: str, delete: Callable[[], Awaitable[None]]) -> bool:
        """End a hold whose upload failed; run ``delete`` if no other request holds the original.

        Returns whether ``delete`` ran (it may raise; the hold is ended all the same).
        """
        async with self._locked(upload_id) as entry:
            entry.holders = max(0, entry.holders - 1)
            if entry.holders:
                return False
            await delete()
            return True
