"""The gateway's record of accepted uploads, shared by every instance through S3.

Layout in the bucket (all names built from ids, never from filenames)::

    originals/<photographer>/<yyyy>/<mm>/<dd>/<ingest id>   the bytes as received
    uploads/<upload id>.json                                what was accepted, and when
    quota/<yyyy-mm-dd>/<photographer>/<upload id>           one empty marker per accepted upload

An image's ``upload_id`` is derived from the photographer and the content's SHA-256,
so the same photo sent again by the same photographer maps to the same id: client
retries find the existing record and create no second image.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from photostream.objectstore import AlreadyExists, ObjectMissing, ObjectStore

# Fixed namespace for deterministic upload ids (uuid5 of photographer and content hash).
UPLOAD_NAMESPACE = uuid.UUID("5b0f3c1e-7d2a-5f43-9a64-1c8e2f7b9d10")


def upload_id_for(photographer_id: str, sha256: str) -> str:
    """The id of a photographer's image with this content hash."""
    return str(uuid.uuid5(UPLOAD_NAMESPACE, f"{photographer_id}\n{sha256}"))


def original_key(photographer_id: str, received_at: datetime, ingest_id: str) -> str:
    """Where an original's bytes go; ``ingest_id`` is a fresh random id per attempt."""
    return f"originals/{photographer_id}/{received_at:%Y/%m/%d}/{ingest_id}"


@dataclass(frozen=True)
class UploadRecord:
    """One accepted upload, as the status endpoint reports it before processing."""

    upload_id: str
    photographer_id: str
    filename: str
    content_type: str
    bytes: int
    sha256: str
    original_key: str
    received_at: str
    title: str | None = None
    tags: list[str] = field(default_factory=list)


class UploadLedger:
    """Reads and writes upload records and quota markers."""

    def __init__(self, store: ObjectStore, *, quota_cache_seconds: float = 30.0) -> None:
        """Use ``store``'s bucket; quota counts are re-read at most every ``quota_cache_seconds``."""
        self._store = store
        self._quota_cache_seconds = quota_cache_seconds
        self._counts: dict[tuple[str, str], tuple[float, int]] = {}

    @staticmethod
    def _record_key(upload_id: str) -> str:
        return f"uploads/{upload_id}.json"

    async def find(self, upload_id: str) -> UploadRecord | None:
        """The record of an upload, or None."""
        try:
            raw = await self._store.get_json(self._record_key(upload_id))
        except ObjectMissing:
            return None
        return UploadRecord(**raw)

    async def save(self, record: UploadRecord) -> bool:
        """Store a new record; False when one with this id exists already (a concurrent twin)."""
        try:
            await self._store.put_json(self._record_key(record.upload_id), asdict(record), if_none_match=True)
        except AlreadyExists:
            return False
        day = record.received_at[:10]
        await self._store.put(
            f"quota/{day}/{record.photographer_id}/{record.upload_id}", b"", content_type="text/plain"
        )
        cached = self._counts.get((record.photographer_id, day))
        if cached:
            self._counts[(record.photographer_id, day)] = (cached[0], cached[1] + 1)
        return True

    async def accepted_today(self, photographer_id: str, now: datetime | None = None) -> int:
        """How many uploads the photographer had accepted today (UTC), across all gateways."""
        day = f"{(now or datetime.now(UTC)):%Y-%m-%d}"
        cached = self._counts.get((photographer_id, day))
        if cached and time.monotonic() - cached[0] < self._quota_cache_seconds:
            return cached[1]
        count = await self._store.count(f"quota/{day}/{photographer_id}/")
        self._counts[(photographer_id, day)] = (time.monotonic(), count)
        return count
