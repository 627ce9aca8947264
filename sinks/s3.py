"""The S3 sink: every ``VariantRendered`` becomes an object; a complete image becomes ``ImageReady``.

Objects go to ``derivatives/{photographer}/{yyyy}/{mm}/{dd}/{upload_id}/{variant}.{ext}`` (the
upload's date, UTC), with their content type, an immutable Cache-Control, a SHA-256 checksum
the server verifies, and user metadata (variant, format, size, digest) from which an image's
variants can be listed back.

Delivery: a partition's offset is committed only up to the first variant of an image that is
not complete yet, so a restart replays every variant of every unfinished image; objects and
``ImageReady`` are idempotent (same keys, same bytes, same ``event_id``). Variants that arrive
after their image was completed (a worker's replay) are written again and, if they start an
image that never completes in this process, it is completed from what S3 already holds.

Deletes: the sink also reads ``photo-deleted`` (same group, so partition p of both topics comes
together). A deleted image's variants still in the batch are not written, those written before
are removed, and it is never announced. Before announcing any image the sink reads its tombstone
(``photostream.deletions``), so a delete it has not consumed yet (or consumed before a restart)
still stops the ``ImageReady``; only an announcement already checked when the delete lands can
precede it, by the time one send takes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from photostream import media
from photostream.deletions import Tombstone, read_tombstone
from photostream.layout import variant_key, variants_prefix
from photostream.objectstore import ObjectMissing, Store
from schemas.errors import SerdeError
from schemas.events import ImageReady, StoredVariant, UploadDeleted, VariantRendered
from schemas.serde import EventSerde
from schemas.topics import PHOTO_READY, Partition
from sinks.consumer import Received

log = logging.getLogger(__name__)

# An image missing variants for this long is checked against S3 (see the module docstring).
STRAGGLER_SECONDS = 30.0
# Images completed recently, so a replay's late variants do not open a new, never-complete image.
_RECENT_IMAGES = 100_000
# Deletes consumed recently, so a deleted image's late variants are not written at all.
_RECENT_DELETES = 100_000


class ReadyEvents(Protocol):
    """Where ``ImageReady`` goes (``photostream.kafka_producer.EventProducer`` in production)."""

    async def send(self, topic: str, *, key: bytes, value: bytes) -> object:
        """Publish and wait for the broker's acknowledgement."""


def ready_event_id(upload_id: uuid.UUID, received_at: datetime, variants: Iterable[StoredVariant]) -> str:
    """An id that is the same for every replay of the same rendering, for subscribers to deduplicate on.

    ``received_at`` is in it: the same photo sent again after a delete has the same id and renders the same
    bytes, but is a new image that subscribers must not take for a repeat of the deleted one.
    """
    digest = hashlib.sha256(f"{upload_id}|{received_at.astimezone(UTC).isoformat(timespec='milliseconds')}".encode())
    for variant in sorted(variants, key=lambda v: (v.variant, v.format)):
        digest.update(f"|{variant.variant}.{variant.format}:{variant.sha256}".encode())
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


Incarnation = tuple[uuid.UUID, datetime]
"""An image as one upload of it: its id and ``received_at`` (the same photo sent again after a delete has the
same id and a later ``received_at``, and is another image to store and announce)."""


@dataclass
class _Image:
    upload_id: uuid.UUID
    photographer_id: str
    received_at: datetime
    expected: int
    partition: Partition
    first_offset: int
    stored: dict[tuple[str, str], StoredVariant] = field(default_factory=dict)
    progressed: float = field(default_factory=time.monotonic)

    @property
    def incarnation(self) -> Incarnation:
        return self.upload_id, self.received_at


@dataclass(frozen=True)
class _Write:
    event: VariantRendered
    key: str
    partition: Partition
    offset: int


class S3Sink:
    """Writes variants to S3 and announces complete images on ``photo-ready``."""

    name = "s3-sink"

    def __init__(
        self,
        store: Store,
        events: ReadyEvents,
        serde: EventSerde,
        *,
        cache_control: str,
        straggler_seconds: float = STRAGGLER_SECONDS,
    ) -> None:
        """Create the sink.

        Args:
            store: The bucket variants go to.
            events: Publishes ``ImageReady``.
            serde: Decodes variants, encodes ``ImageReady``.
            cache_control: The Cache-Control stored with each variant.
            straggler_seconds: How long an incomplete image waits before S3 is asked what it holds.
        """
        self._store = store
        self._events = events
        self._serde = serde
        self._cache_control = cache_control
        self._straggler_seconds = straggler_seconds
        self._writes: list[_Write] = []
        self._images: dict[Incarnation, _Image] = {}
        self._next: dict[Partition, int] = {}
        self._recent: OrderedDict[Incarnation, None] = OrderedDict()
        self._deleted: OrderedDict[uuid.UUID, UploadDeleted | Tombstone] = OrderedDict()  # the latest delete of each
        # Deleted images whose stored variants this batch's flush removes.
        self._removals: dict[uuid.UUID, UploadDeleted] = {}

    def pending(self) -> int:
        """Variants not yet written."""
        return len(self._writes)

    async def add(self, message: Received) -> None:
        """Take one ``VariantRendered`` or ``UploadDeleted``; an undecodable message is logged and skipped."""
        partition = message.source
        self._next[partition] = message.offset + 1
        try:
            event = self._serde.decode(message.value, message.topic, message.partition, message.offset)
        except SerdeError as error:
            log.error("skipping an undecodable message: %s", error)
            return
        if isinstance(event, UploadDeleted):
            self._delete(event)
            return
        if not isinstance(event, VariantRendered):
            log.error("skipping a %s on %s", type(event).__name__, message.topic)
            return
        deleted = self._deleted.get(event.upload_id)
        if deleted is not None and deleted.deletes(event.received_at):
            return
        key = variant_key(event.photographer_id, event.upload_id, event.received_at, event.variant, event.format)
        self._writes.append(_Write(event, key, partition, message.offset))
        incarnation = (event.upload_id, event.received_at)
        if incarnation not in self._images and incarnation not in self._recent:
            self._images[incarnation] = _Image(
                upload_id=event.upload_id,
                photographer_id=event.photographer_id,
                received_at=event.received_at,
                expected=event.variant_count,
                partition=partition,
                first_offset=message.offset,
            )

    def _delete(self, deleted: UploadDeleted) -> None:
        """Stop everything of a deleted image: its pending writes, its announcement; remove what is stored."""
        upload_id = deleted.upload_id
        self._writes = [
            write
            for write in self._writes
            if write.event.upload_id != upload_id or not deleted.deletes(write.event.received_at)
        ]
        for image in [i for i in self._images.values() if i.upload_id == upload_id]:
            if deleted.deletes(image.received_at):
                del self._images[image.incarnation]
        self._removals[upload_id] = deleted
        self._remember_deleted(deleted)

    def _remember_deleted(self, deleted: UploadDeleted | Tombstone) -> None:
        self._deleted[deleted.upload_id] = deleted
        self._deleted.move_to_end(deleted.upload_id)
        if len(self._deleted) > _RECENT_DELETES:
            self._deleted.popitem(last=False)

    async def flush(self) -> dict[Partition, int]:
        """Write the batch's variants, announce the images now complete, return safe offsets."""
        writes, self._writes = self._writes, []
        try:
            await asyncio.gather(*(self._put(write) for write in writes))
        except BaseException:
            self._writes = writes + self._writes  # the loop retries the whole flush
            raise
        for write in writes:
            image = self._images.get((write.event.upload_id, write.event.received_at))
            if image is not None:
                image.stored[(write.event.variant, write.event.format)] = _stored(write)
                image.progressed = time.monotonic()
        await self._complete_stragglers()
        complete = [image for image in self._images.values() if len(image.stored) >= image.expected]
        tombstones = await asyncio.gather(*(read_tombstone(self._store, image.upload_id) for image in complete))
        for image, tombstone in zip(complete, tombstones, strict=True):
            if tombstone is not None and tombstone.deletes(image.received_at):
                # Deleted after its variants were rendered; the delete's own message may come later or never here.
                del self._images[image.incarnation]
                self._remember_deleted(tombstone)
                await self._remove(image.photographer_id, image.upload_id, image.received_at, tombstone.deleted_at)
            else:
                await self._announce(image)
        removals, self._removals = self._removals, {}
        try:
            for gone in removals.values():
                await self._remove(gone.photographer_id, gone.upload_id, gone.received_at, gone.deleted_at)
        except BaseException:
            self._removals = {**removals, **self._removals}
            raise
        return self._safe_offsets()

    async def _remove(self, photographer_id: str, upload_id: uuid.UUID, received_at: datetime, up_to: datetime) -> None:
        """Remove the variants stored for a deleted image, except a later re-upload's (received after ``up_to``)."""
        keys = await self._store.list_keys(variants_prefix(photographer_id, upload_id, received_at))
        later = await asyncio.gather(*(self._later(key, up_to) for key in keys))
        doomed = [key for key, keep in zip(keys, later, strict=True) if not keep]
        await asyncio.gather(*(self._store.delete(key) for key in doomed))
        log.info("removed %d variants of deleted upload %s", len(doomed), upload_id)

    async def _later(self, key: str, up_to: datetime) -> bool:
        """Whether the variant at ``key`` belongs to an upload received after ``up_to`` (the same photo sent again)."""
        try:
            _, meta = await self._store.head(key)
        except ObjectMissing:
            return False
        stored = meta.get("received-at")
        return stored is not None and datetime.fromisoformat(stored) > up_to

    def drop(self, partitions: Iterable[Partition]) -> None:
        """Forget images and writes of partitions no longer ours; their new owner replays them."""
        gone = set(partitions)
        self._writes = [write for write in self._writes if write.partition not in gone]
        self._images = {key: image for key, image in self._images.items() if image.partition not in gone}
        for partition in gone:
            self._next.pop(partition, None)

    async def _put(self, write: _Write) -> None:
        event = write.event
        await self._store.put(
            write.key,
            event.data,
            content_type=event.content_type,
            cache_control=self._cache_control,
            sha256=bytes.fromhex(event.sha256),
            metadata={
                "upload-id": str(event.upload_id),
                "variant": event.variant,
                "format": event.format,
                "width": str(event.width),
                "height": str(event.height),
                "sha256": event.sha256,
                "received-at": event.received_at.isoformat(),
            },
        )

    async def _announce(self, image: _Image) -> None:
        variants = tuple(sorted(image.stored.values(), key=lambda v: (v.variant, v.format)))
        ready = ImageReady(
            upload_id=image.upload_id,
            photographer_id=image.photographer_id,
            event_id=ready_event_id(image.upload_id, image.received_at, variants),
            variants=variants,
            received_at=image.received_at,
            ready_at=datetime.now(UTC),
        )
        await self._events.send(
            PHOTO_READY, key=image.photographer_id.encode(), value=self._serde.encode(ready, PHOTO_READY)
        )
        del self._images[image.incarnation]
        self._recent[image.incarnation] = None
        if len(self._recent) > _RECENT_IMAGES:
            self._recent.popitem(last=False)

    async def _complete_stragglers(self) -> None:
        now = time.monotonic()
        for image in [i for i in self._images.values() if now - i.progressed > self._straggler_seconds]:
            image.progressed = now
            prefix = variants_prefix(image.photographer_id, image.upload_id, image.received_at)
            for key in await self._store.list_keys(prefix):
                try:
                    size, meta = await self._store.head(key)
                except ObjectMissing:
                    continue
                stored = _stored_from_metadata(key, size, meta)
                if stored is not None:
                    image.stored.setdefault((stored.variant, stored.format), stored)

    def _safe_offsets(self) -> dict[Partition, int]:
        offsets = dict(self._next)
        for image in self._images.values():
            offsets[image.partition] = min(offsets.get(image.partition, image.first_offset), image.first_offset)
        return offsets


def _stored(write: _Write) -> StoredVariant:
    event = write.event
    return StoredVariant(
        variant=event.variant,
        format=event.format,
        content_type=event.content_type,
        width=event.width,
        height=event.height,
        bytes=len(event.data),
        key=write.key,
        sha256=event.sha256,
    )


def _stored_from_metadata(key: str, size: int, meta: dict[str, str]) -> StoredVariant | None:
    try:
        fmt = meta["format"]
        return StoredVariant(
            variant=meta["variant"],
            format=fmt,
            content_type=media.content_type(fmt),
            width=int(meta["width"]),
            height=int(meta["height"]),
            bytes=size,
            key=key,
            sha256=meta["sha256"],
        )
    except (KeyError, ValueError):
        return None
