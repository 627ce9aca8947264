"""Deleted uploads: the tombstone every process checks, beside the event subscribers get.

``DELETE /v1/uploads/{id}`` writes ``deleted/<upload id>.json`` before it publishes
``UploadDeleted`` on ``photo-deleted`` and before it removes anything. The event is the news: it
reaches the workers, the sinks and every subscriber in their own time. The tombstone is the
record: a process that must not act on a deleted upload (a worker about to render it, the S3 sink
about to announce it ready) reads it at that moment, so it need not have consumed the event yet,
and a restart that lost what it had consumed still knows.

An upload id is derived from the photographer and the content, so uploading the same photo again
after a delete brings back the same id with a later ``received_at``. A tombstone deletes only what
was received up to its ``deleted_at`` (``UploadDeleted.deletes``), and the next delete replaces it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from photostream.objectstore import ObjectMissing, Store
from schemas.events import UploadDeleted

TOMBSTONE_PREFIX = "deleted/"


def tombstone_key(upload_id: object) -> str:
    """Where an upload's tombstone is kept (one per id: the latest delete)."""
    return f"{TOMBSTONE_PREFIX}{upload_id}.json"


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What a delete recorded of the upload it removed."""

    upload_id: uuid.UUID
    photographer_id: str
    received_at: datetime
    deleted_at: datetime

    def deletes(self, received_at: datetime) -> bool:
        """Whether the upload received at ``received_at`` is the deleted one (or older), not a later re-upload."""
        return received_at <= self.deleted_at


async def write_tombstone(store: Store, event: UploadDeleted) -> None:
    """Record a delete, before its event is published or anything is removed."""
    record = {
        "upload_id": str(event.upload_id),
        "photographer_id": event.photographer_id,
        "received_at": event.received_at.isoformat(),
        "deleted_at": event.deleted_at.isoformat(),
    }
    await store.put_json(tombstone_key(event.upload_id), record)


async def read_tombstone(store: Store, upload_id: object) -> Tombstone | None:
    """The latest delete of ``upload_id``, or None if it was never deleted."""
    try:
        record = await store.get_json(tombstone_key(upload_id))
    except ObjectMissing:
        return None
    return Tombstone(
        upload_id=uuid.UUID(record["upload_id"]),
        photographer_id=record["photographer_id"],
        received_at=datetime.fromisoformat(record["received_at"]),
        deleted_at=datetime.fromisoformat(record["deleted_at"]),
    )


async def is_deleted(store: Store, upload_id: object, received_at: datetime) -> bool:
    """Whether the upload received at ``received_at`` was deleted since (one GET)."""
    tombstone = await read_tombstone(store, upload_id)
    return tombstone is not None and tombstone.deletes(received_at)
