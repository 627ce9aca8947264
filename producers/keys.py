"""API keys: each belongs to one photographer, stored only as a hash, shared by every gateway.

A key is 32 random bytes (URL-safe text, prefixed ``psk_``). The store keeps the
SHA-256 of the key as the object name ``auth/api-keys/<hex>.json``; a random key
that long needs no slow hash. A lookup fetches the object named by the digest, so
no code compares a presented key with a stored one, and timing reveals nothing about
stored keys. Every
gateway instance reads the same bucket, so a key created anywhere works everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from cachetools import TTLCache

from photostream.config import S3Settings
from photostream.objectstore import AlreadyExists, ObjectMissing, ObjectStore, Store

KEY_PREFIX = "psk_"
# Unknown keys remembered at once; past this the oldest are forgotten first.
UNKNOWN_CACHE_SIZE = 10_000
_PHOTOGRAPHER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class InvalidPhotographerId(ValueError):
    """A photographer id must be 1-64 characters of letters, digits, '.', '_' or '-'."""


def check_photographer_id(photographer_id: str) -> str:
    """Return the id if it is valid (ids become parts of S3 keys and Kafka keys)."""
    if not _PHOTOGRAPHER_ID.match(photographer_id):
        raise InvalidPhotographerId(
            f"invalid photographer id {photographer_id!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    return photographer_id


def key_digest(api_key: str) -> str:
    """The hex SHA-256 under which a key is stored."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """What the store knows about a key: whose it is and when it was made."""

    photographer_id: str
    created_at: str
    digest: str


class KeyStore(Protocol):
    """Where hashed API keys live."""

    async def create(self, photographer_id: str) -> str:
        """Make a new key for the photographer; return it (the only time it is seen)."""
        ...

    async def lookup(self, api_key: str) -> KeyRecord | None:
        """Return the key's record, or None for an unknown key."""
        ...

    def known(self, api_key: str) -> KeyRecord | None:
        """The key's record if it is at hand without I/O (recently seen valid), else None."""
        ...


class S3KeyStore:
    """Keys as small JSON objects in the shared bucket, with short in-process caches.

    Known keys are cached for ``cache_seconds``; unknown ones for ``unknown_cache_seconds``
    (at most ``UNKNOWN_CACHE_SIZE`` of them), so the same bad key sent again and again costs
    one S3 read per period. Concurrent lookups of one key share a single S3 read.
    """

    def __init__(self, store: Store, *, cache_seconds: float = 60.0, unknown_cache_seconds: float = 60.0) -> None:
        """Use ``store``'s bucket; known keys are cached ``cache_seconds``, unknown ones ``unknown_cache_seconds``."""
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyRecord]] = {}
        # Bounded: a flood of distinct made-up keys evicts the oldest instead of growing memory.
        self._unknown: TTLCache[str, bool] | None = (
            TTLCache(maxsize=UNKNOWN_CACHE_SIZE, ttl=unknown_cache_seconds) if unknown_cache_seconds > 0 else None
        )
        self._pending: dict[str, asyncio.Future[KeyRecord | None]] = {}

    @staticmethod
    def _object_key(digest: str) -> str:
        return f"auth/api-keys/{digest}.json"

    async def create(self, photographer_id: str) -> str:
        """Make and store a new key for the photographer; return it once."""
        check_photographer_id(photographer_id)
        while True:
            api_key = KEY_PREFIX + secrets.token_urlsafe(32)
            digest = key_digest(api_key)
            record = {"photographer_id": photographer_id, "created_at": datetime.now(UTC).isoformat()}
            try:
                await self._store.put_json(self._object_key(digest), record, if_none_match=True)
            except AlreadyExists:
                continue  # astronomically unlikely; never overwrite someone's key
            return api_key

    def known(self, api_key: str) -> KeyRecord | None:
        """The record of a key this process has recently seen as valid, from memory only (no S3)."""
        cached = self._cache.get(key_digest(api_key))
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        return None

    async def lookup(self, api_key: str) -> KeyRecord | None:
        """Return the record of a known key, or None (StoreError when the store is down)."""
        if not api_key.startswith(KEY_PREFIX) or len(api_key) > 128:
            return None
        found = self.known(api_key)
        digest = key_digest(api_key)
        if found is not None or (self._unknown is not None and digest in self._unknown):
            return found
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(digest))
            self._pending[digest] = pending
            pending.add_done_callback(lambda _: self._pending.pop(digest, None))
        # Shielded: one caller giving up (a client that went away) must not cancel the others' read.
        return await asyncio.shield(pending)

    async def _fetch(self, digest: str) -> KeyRecord | None:
        try:
            record = await self._store.get_json(self._object_key(digest))
        except ObjectMissing:
            if self._unknown is not None:
                self._unknown[digest] = True
            return None
        found = KeyRecord(record["photographer_id"], record["created_at"], digest)
        self._cache[digest] = (time.monotonic(), found)
        return found


async def create_keys(settings: S3Settings, photographers: Iterable[str]) -> dict[str, str]:
    """Create a fresh API key for each photographer (demos, benchmarks); returns them by photographer."""
    store = ObjectStore(settings)
    try:
        keys = S3KeyStore(store)
        return {photographer: await keys.create(photographer) for photographer in photographers}
    finally:
        await store.close()
