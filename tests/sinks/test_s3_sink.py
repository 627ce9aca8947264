"""The S3 sink's bookkeeping with an in-memory bucket: when images are ready, which offsets are safe."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Message

from photostream.config import SinksSettings
from photostream.deletions import write_tombstone
from photostream.objectstore import MemoryObjectStore
from schemas.events import ImageReady, UploadDeleted, VariantRendered
from schemas.serde import EventSerde
from schemas.topics import PHOTO_DELETED, PHOTO_READY, PHOTO_VARIANTS
from sinks.consumer import Received
from sinks.s3 import S3Sink, variant_key

CACHE_CONTROL = SinksSettings().cache_control
SERDE = EventSerde()
RECEIVED = datetime(2026, 3, 4, 23, 59, tzinfo=UTC)
SPEC = [("web", "webp"), ("web", "jpeg"), ("thumb", "webp"), ("thumb", "jpeg"), ("square", "webp")]


class Published:
    def __init__(self) -> None:
        self.events: list[ImageReady] = []

    async def send(self, topic, *, key, value):
        assert topic == PHOTO_READY
        self.events.append(SERDE.decode(value, topic))


def variants(upload_id: uuid.UUID, photographer: str = "alice") -> list[VariantRendered]:
    out = []
    for name, fmt in SPEC:
        data = f"{upload_id}{name}{fmt}".encode()
        out.append(
            VariantRendered(
                upload_id=upload_id,
                photographer_id=photographer,
                variant=name,
                format=fmt,
                content_type=f"image/{fmt}",
                width=10,
                height=8,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
                variant_count=len(SPEC),
                received_at=RECEIVED,
                rendered_at=RECEIVED,
            )
        )
    return out


def received(event: VariantRendered, offset: int, partition: int = 3) -> Received:
    message = Message(
        topic=PHOTO_VARIANTS, partition=partition, offset=offset, value=SERDE.encode(event, PHOTO_VARIANTS)
    )
    return Received.of(message)


async def add_all(s3, events: list[VariantRendered], start: int = 0, partition: int = 3) -> None:
    """Hand ``events`` to the sink as consecutive messages of ``photo-variants``, from offset ``start``."""
    for offset, event in enumerate(events, start=start):
        await s3.add(received(event, offset, partition=partition))


def sink(**options) -> tuple[S3Sink, MemoryObjectStore, Published]:
    bucket, published = MemoryObjectStore(), Published()
    return S3Sink(bucket, published, SERDE, **{"cache_control": CACHE_CONTROL, **options}), bucket, published


async def test_keys_follow_the_documented_layout_with_caching_and_checksums():
    upload_id = uuid.uuid4()
    key = variant_key("alice", upload_id, RECEIVED, "thumb", "jpeg")
    assert key == f"derivatives/alice/2026/03/04/{upload_id}/thumb.jpg"
    s3, bucket, _ = sink()
    await add_all(s3, variants(upload_id))
    await s3.flush()
    stored = bucket.stored(key)
    assert stored.cache_control == "public, max-age=31536000, immutable"
    assert stored.content_type == "image/jpeg"
    assert stored.sha256 == hashlib.sha256(stored.body).digest(), "sent for S3 to verify"


async def test_an_image_split_across_batches_is_not_committed_past_its_first_variant():
    upload_id = uuid.uuid4()
    s3, _, published = sink()
    events = variants(upload_id)
    await add_all(s3, events[:3], start=100)
    assert await s3.flush() == {(PHOTO_VARIANTS, 3): 100}
    assert published.events == []
    await add_all(s3, events[3:], start=103)
    assert await s3.flush() == {(PHOTO_VARIANTS, 3): 105}
    (ready,) = published.events
    assert ready.upload_id == upload_id
    assert len(ready.variants) == 5


async def test_the_same_rendering_announced_twice_has_the_same_event_id():
    upload_id = uuid.uuid4()
    ids = []
    for _ in range(2):
        s3, _, published = sink()
        await add_all(s3, variants(upload_id))
        await s3.flush()
        ids.append(published.events[0].event_id)
    assert ids[0] == ids[1]


async def test_late_replayed_variants_of_a_finished_image_do_not_hold_commits_back():
    upload_id = uuid.uuid4()
    s3, _, published = sink()
    events = variants(upload_id)
    await add_all(s3, events)
    await s3.flush()
    await add_all(s3, events[:2], start=5)
    assert await s3.flush() == {(PHOTO_VARIANTS, 3): 7}
    assert len(published.events) == 1


async def test_after_a_restart_an_image_whose_variants_are_already_stored_is_completed_from_s3():
    upload_id = uuid.uuid4()
    events = variants(upload_id)
    first, bucket, _ = sink()
    await add_all(first, events)
    await first.flush()
    # A new process only sees the last two variants (the rest were committed before it).
    published = Published()
    second = S3Sink(bucket, published, SERDE, cache_control=CACHE_CONTROL, straggler_seconds=0)
    await add_all(second, events[3:], start=3)
    assert await second.flush() == {(PHOTO_VARIANTS, 3): 5}
    (ready,) = published.events
    assert sorted((v.variant, v.format) for v in ready.variants) == sorted(SPEC)


async def test_revoked_partitions_are_forgotten():
    s3, _, _ = sink()
    await add_all(s3, variants(uuid.uuid4())[:2], partition=7)
    s3.drop([(PHOTO_VARIANTS, 7)])
    assert s3.pending() == 0
    assert await s3.flush() == {}


def deletion(upload_id: uuid.UUID, *, deleted_at: datetime, received_at: datetime = RECEIVED) -> UploadDeleted:
    return UploadDeleted(
        upload_id=upload_id,
        photographer_id="alice",
        sha256="0" * 64,
        bucket="memory",
        original_key=f"originals/alice/{upload_id}",
        received_at=received_at,
        deleted_at=deleted_at,
        gateway_id="test",
    )


def delete_message(event: UploadDeleted, offset: int, partition: int = 3) -> Received:
    message = Message(topic=PHOTO_DELETED, partition=partition, offset=offset, value=SERDE.encode(event, PHOTO_DELETED))
    return Received.of(message)


async def variant_keys(bucket: MemoryObjectStore, upload_id: uuid.UUID) -> list[str]:
    return [key for key in await bucket.list_keys("derivatives/") if f"/{upload_id}/" in key]


async def test_a_delete_in_the_batch_drops_the_image_writes_nothing_and_announces_nothing():
    upload_id, other = uuid.uuid4(), uuid.uuid4()
    s3, bucket, published = sink()
    events = variants(upload_id)
    await add_all(s3, events[:3])
    await s3.add(delete_message(deletion(upload_id, deleted_at=RECEIVED + timedelta(minutes=1)), 40))
    await add_all(s3, [*events[3:], *variants(other)], start=3)
    offsets = await s3.flush()
    assert await variant_keys(bucket, upload_id) == []
    assert [ready.upload_id for ready in published.events] == [other]
    assert offsets == {(PHOTO_VARIANTS, 3): 10, (PHOTO_DELETED, 3): 41}, "nothing of the deleted image holds commits"


async def test_a_delete_removes_the_variants_stored_before_it():
    upload_id = uuid.uuid4()
    s3, bucket, published = sink()
    await add_all(s3, variants(upload_id))
    await s3.flush()
    assert len(await variant_keys(bucket, upload_id)) == len(SPEC)
    await s3.add(delete_message(deletion(upload_id, deleted_at=RECEIVED + timedelta(minutes=1)), 0))
    await s3.flush()
    assert await variant_keys(bucket, upload_id) == []
    assert len(published.events) == 1, "announced before the delete, as it happened"


async def test_an_image_whose_tombstone_the_sink_has_not_consumed_is_not_announced_and_its_variants_go():
    upload_id = uuid.uuid4()
    s3, bucket, published = sink()
    await write_tombstone(bucket, deletion(upload_id, deleted_at=RECEIVED + timedelta(minutes=1)))
    await add_all(s3, variants(upload_id))
    assert await s3.flush() == {(PHOTO_VARIANTS, 3): 5}
    assert published.events == []
    assert await variant_keys(bucket, upload_id) == []
    await add_all(s3, variants(upload_id)[:1], start=5)  # a replay's late variant
    assert s3.pending() == 0, "known deleted: not even written"


async def test_the_same_photo_uploaded_again_after_its_delete_is_stored_and_announced():
    upload_id = uuid.uuid4()
    s3, bucket, published = sink()
    old_delete = deletion(
        upload_id, deleted_at=RECEIVED - timedelta(minutes=1), received_at=RECEIVED - timedelta(hours=1)
    )
    await write_tombstone(bucket, old_delete)
    await s3.add(delete_message(old_delete, 0))
    await add_all(s3, variants(upload_id))  # received at RECEIVED, after that delete
    await s3.flush()
    assert [ready.upload_id for ready in published.events] == [upload_id]
    assert len(await variant_keys(bucket, upload_id)) == len(SPEC)
    await s3.add(delete_message(old_delete, 1))  # the old delete replayed: the new image's variants stay
    await s3.flush()
    assert len(await variant_keys(bucket, upload_id)) == len(SPEC)


async def test_a_photo_announced_deleted_and_sent_again_the_same_day_is_announced_again():
    upload_id = uuid.uuid4()
    s3, bucket, published = sink()
    await add_all(s3, variants(upload_id))
    await s3.flush()
    deleted = deletion(upload_id, deleted_at=RECEIVED + timedelta(seconds=5))
    await write_tombstone(bucket, deleted)
    await s3.add(delete_message(deleted, 0))
    await s3.flush()
    again = RECEIVED + timedelta(seconds=6)  # the same photo, the same day: the same id and variant keys
    await add_all(s3, [dataclasses.replace(event, received_at=again) for event in variants(upload_id)], start=5)
    await s3.flush()
    assert [(ready.upload_id, ready.received_at) for ready in published.events] == [
        (upload_id, RECEIVED),
        (upload_id, again),
    ]
    first, second = published.events
    assert first.event_id != second.event_id, "a new image, not a repeat for subscribers to drop"
    assert len(await variant_keys(bucket, upload_id)) == len(SPEC)
