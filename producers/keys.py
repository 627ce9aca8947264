"""API keys: each belongs to one photographer, stored only as a hash, shared by every gateway.

A key is 32 random bytes (URL-safe text, prefixed ``psk_``). The store keeps the
SHA-256 of the key as the object name ``auth/api-keys/<hex>.json``; a random key
that long needs no slow hash. A lookup fetches the object named by the digest, so
no code compares a presented key with a stored one, and timing reveals nothing about
stored keys. Every
gateway instance reads the same bucket, so a key created anywhere works everywhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from photostream.config import S3Settings
from photostream.objectstore import AlreadyExists, ObjectMissing, ObjectStore

KEY_PREFIX = "psk_"
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


class S3KeyStore:
    """Keys as small JSON objects in the shared bucket, with a short in-process cache."""

    def __init__(self, store: ObjectStore, *, cache_seconds: float = 60.0) -> None:
        """Use ``store``'s bucket; positive lookups are cached for ``cache_seconds``."""
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyRecord]] = {}

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

    async def lookup(self, api_key: str) -> KeyRecord | None:
        """Return the record of a known key, or None (StoreError when the store is down)."""
        if not api_key.startswith(KEY_PREFIX) or len(api_key) > 128:
            return None
        digest = key_digest(api_key)
        cached = self._cache.get(digest)
        if cached and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        try:
            record = await self._store.get_json(self._object_key(digest))
        except ObjectMissing:
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
        store.close()
