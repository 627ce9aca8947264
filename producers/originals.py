"""Which originals the requests of this process hold, so a failed one deletes only its own.

An original's key is derived from the photographer and the content, so every request
carrying the same photo writes the same object. A request whose event was not
acknowledged deletes the original it stored, but only when no other request of this
process still holds it (that one may be about to publish it); the caller also checks
that the upload was never acknowledged before. Storing and deleting one upload id take
the same lock, so a delete cannot land between another request's checks and its write.

Requests on other gateway instances are not counted here: see docs/decisions.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # requests that stored the original and have not released or discarded it
    users: int = 0  # tasks holding or waiting for the lock


class HeldOriginals:
    """Per upload id: the requests of this process that hold its original."""

    def __init__(self) -> None:
        """Start with nothing held."""
        self._entries: dict[str, _Entry] = {}

    def holders(self, upload_id: str) -> int:
        """How many requests hold the original of ``upload_id``."""
        entry = self._entries.get(upload_id)
        return entry.holders if entry else 0

    @asynccontextmanager
    async def _locked(self, upload_id: str) -> AsyncIterator[_Entry]:
        entry = self._entries.setdefault(upload_id, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
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
