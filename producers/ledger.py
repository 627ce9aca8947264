"""The gateway's record of accepted uploads, shared by every instance through S3.

Layout in the bucket (all names built from ids, never from filenames)::

    originals/<photographer>/<upload id>            the bytes as received
    incoming/<photographer>/<upload id>.direct      a direct upload's bytes until admitted (staging)
    uploads/<upload id>.json                        what was accepted, and when (removed by a delete)
    deleted/<upload id>.json                        the latest delete of an upload (photostream.deletions)
    quota/<yyyy-mm-dd>/<photographer>/<upload id>   one empty marker per accepted upload

An image's ``upload_id`` is derived from the photographer and the content's SHA-256,
so the same photo sent again by the same photographer maps to the same id: client
retries find the existing record and create no second image. The original's key is
built from that id too, so an attempt whose event was never published (and whose
original could not be deleted) is overwritten by the retry, not stored beside it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from photostream.objectstore import STAGING_PREFIX, AlreadyExists, ObjectMissing, Store
from schemas.events import UploadReceived

# Fixed namespace for deterministic upload ids (uuid5 of photographer and content hash).
UPLOAD_NAMESPACE = uuid.UUID("5b0f3c1e-7d2a-5f43-9a64-1c8e2f7b9d10")


def upload_id_for(photographer_id: str, sha256: str) -> str:
    """The id of a photographer's image with this content hash."""
    return str(uuid.uuid5(UPLOAD_NAMESPACE, f"{photographer_id}\n{sha256}"))


def original_key(photographer_id: str, upload_id: str) -> str:
    """Where an original's bytes go: the same key for every attempt at the same photo."""
    return f"originals/{photographer_id}/{upload_id}"


def staging_key(photographer_id: str, ingest_id: str) -> str:
    """Where an upload's bytes are staged before they are admitted (``ingest_id`` names the attempt)."""
    return f"{STAGING_PREFIX}{photographer_id}/{ingest_id}"


PENDING_SUFFIX = ".pending"


def pending_key(photographer_id: str, upload_id: str) -> str:
    """The marker that an original is stored at its key while its event is not yet acknowledged.

    Written before the original, removed once the upload is acknowledged or the original deleted: one left
    behind (a gateway killed in between) tells the staging sweep which original may be an orphan.
    """
    return f"{STAGING_PREFIX}{photographer_id}/{upload_id}{PENDING_SUFFIX}"


def pending_upload(key: str) -> tuple[str, str] | None:
    """The (photographer, upload id) a ``pending_key`` names; None for any other key."""
    if not key.startswith(STAGING_PREFIX) or not key.endswith(PENDING_SUFFIX):
        return None
    photographer_id, _, name = key[len(STAGING_PREFIX) : -len(PENDING_SUFFIX)].rpartition("/")
    return (photographer_id, name) if photographer_id and name else None


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

    @property
    def received(self) -> datetime:
        """``received_at`` as a time (the record keeps the ISO text it is stored as)."""
        return datetime.fromisoformat(self.received_at)

    @classmethod
    def of(cls, event: UploadReceived) -> UploadRecord:
        """The record of a published ``UploadReceived``."""
        return cls(
            upload_id=str(event.upload_id),
            photographer_id=event.photographer_id,
            filename=event.filename,
            content_type=event.content_type,
            bytes=event.bytes,
            sha256=event.sha256,
            original_key=event.original_key,
            received_at=event.received_at.isoformat(),
            title=event.title,
            tags=list(event.tags),
        )


@dataclass
class _Day:
    """One photographer's uploads on one UTC day, as this process counts them against the quota.

    The count is the ids the last listing showed plus the ids this process took that the listing does
    not show yet, kept as a set of their own so that counting costs nothing however many there are:
    one photographer sends thousands a day.
    """

    listed: frozenset[str] = frozenset()
    listed_at: float = -math.inf  # time.monotonic() of the listing
    # Upload ids this process reserved (False) or saved (True): a listing may not show them yet.
    local: dict[str, bool] = field(default_factory=dict)
    unlisted: set[str] = field(default_factory=set)  # the ids of ``local`` that ``listed`` lacks

    def relist(self, ids: frozenset[str]) -> None:
        """Take a new listing of the day's quota markers."""
        self.listed, self.listed_at = ids, time.monotonic()
        self.unlisted = {upload_id for upload_id in self.local if upload_id not in ids}

    def used(self) -> int:
        """Slots taken: every gateway's listed uploads and this process's own."""
        return len(self.listed) + len(self.unlisted)

    def knows(self, upload_id: str) -> bool:
        """Whether the id holds a slot already (listed, or taken here)."""
        return upload_id in self.local or upload_id in self.listed

    def take(self, upload_id: str, *, saved: bool) -> None:
        """Count the id as reserved here, or as saved (a saved id stays counted)."""
        self.local[upload_id] = saved or self.local.get(upload_id, False)
        if upload_id not in self.listed:
            self.unlisted.add(upload_id)

    def give_back(self, upload_id: str) -> None:
        """Uncount an id reserved here and not saved."""
        if self.local.get(upload_id) is False:
            del self.local[upload_id]
            self.unlisted.discard(upload_id)


class UploadLedger:
    """Reads and writes upload records and quota markers, and hands out quota slots.

    The quota is counted per photographer and UTC day as the markers listed in the bucket
    (every gateway's accepted uploads, re-listed at most every ``quota_cache_seconds``)
    together with the ids this process has reserved or saved that day. ``reserve`` checks
    and takes a slot with no ``await`` in between, so concurrent requests on one gateway
    never exceed the quota; gateways learn of each other's uploads at the next listing.
    """

    def __init__(self, store: Store, *, quota_cache_seconds: float = 30.0) -> None:
        """Use ``store``'s bucket; quota markers are re-listed at most every ``quota_cache_seconds``."""
        self._store = store
        self._quota_cache_seconds = quota_cache_seconds
        self._days: dict[tuple[str, str], _Day] = {}

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

    async def forget(self, upload_id: str) -> None:
        """Remove an upload's record (it was deleted): the id is unknown again, and its content new again.

        The quota marker stays: the upload counted on its day.
        """
        await self._store.delete(self._record_key(upload_id))

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
        self._day(record.photographer_id, day).take(record.upload_id, saved=True)
        return True

    def _day(self, photographer_id: str, day: str) -> _Day:
        # Counts of past days are never asked again; keep memory to about one day's uploads.
        for stale in [key for key in self._days if key[1] < day]:
            del self._days[stale]
        return self._days.setdefault((photographer_id, day), _Day())

    async def _listed_day(self, photographer_id: str, day: str) -> _Day:
        """The day's count, with a listing of the quota markers at most ``quota_cache_seconds`` old."""
        counted = self._day(photographer_id, day)
        if time.monotonic() - counted.listed_at >= self._quota_cache_seconds:
            prefix = f"quota/{day}/{photographer_id}/"
            ids = frozenset(key[len(prefix) :] for key in await self._store.list_keys(prefix))
            counted = self._day(photographer_id, day)  # the same, unless the day was dropped meanwhile
            counted.relist(ids)
        return counted

    async def accepted_today(self, photographer_id: str, now: datetime | None = None) -> int:
        """Uploads the photographer had accepted (or has in flight here) today (UTC), across all gateways."""
        day = f"{(now or datetime.now(UTC)):%Y-%m-%d}"
        return (await self._listed_day(photographer_id, day)).used()

    async def reserve(self, photographer_id: str, upload_id: str, received_at: datetime, quota: int) -> bool:
        """Take one of the day's ``quota`` slots for ``upload_id``; False when none is left.

        Taking the same id twice uses one slot. Give the slot back with ``release`` if the
        upload is not saved after all.
        """
        counted = await self._listed_day(photographer_id, f"{received_at:%Y-%m-%d}")
        # From here on no await: the check and the reservation are one step for the event loop.
        if counted.knows(upload_id):
            return True
        if counted.used() >= quota:
            return False
        counted.take(upload_id, saved=False)
        return True

    def release(self, photographer_id: str, upload_id: str, received_at: datetime) -> None:
        """Give back a slot taken by ``reserve``, unless the upload was saved meanwhile (then it counts)."""
        counted = self._days.get((photographer_id, f"{received_at:%Y-%m-%d}"))
        if counted is not None:
            counted.give_back(upload_id)
