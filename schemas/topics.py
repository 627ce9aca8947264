"""Topic names and the event each carries. Names only: creating topics is the stack's job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from schemas.events import (
    ImageProcessed,
    ImageReady,
    ProcessingFailed,
    ProcessingStarted,
    Record,
    UploadDeleted,
    UploadReceived,
    VariantRendered,
)

PHOTO_UPLOADS = "photo-uploads"
PHOTO_VARIANTS = "photo-variants"
PHOTO_PROCESSED = "photo-processed"
PHOTO_READY = "photo-ready"
PHOTO_FAILED = "photo-failed"
PHOTO_DELETED = "photo-deleted"
PHOTO_PROCESSING = "photo-processing"

EVENT_BY_TOPIC: Mapping[str, type[Record]] = MappingProxyType(
    {
        PHOTO_UPLOADS: UploadReceived,
        PHOTO_VARIANTS: VariantRendered,
        PHOTO_PROCESSED: ImageProcessed,
        PHOTO_READY: ImageReady,
        PHOTO_FAILED: ProcessingFailed,
        PHOTO_DELETED: UploadDeleted,
        PHOTO_PROCESSING: ProcessingStarted,
    }
)
"""Topic name to the event class on it; every topic carries exactly one event type."""

SUBSCRIBABLE_TOPICS: tuple[str, ...] = (PHOTO_UPLOADS, PHOTO_PROCESSED, PHOTO_READY, PHOTO_FAILED, PHOTO_DELETED)
"""The topics other services may subscribe to: their events are the published contract
(docs/subscribers.md, docs/asyncapi.yaml). ``photo-variants`` is internal: it carries image
bytes from the workers to the S3 sink, and its shape may change with the pipeline. ``photo-processing`` is
internal too: a best-effort progress signal for the gateways' live feed, which may be missing."""

TOPIC_BY_EVENT: Mapping[type[Record], str] = MappingProxyType({cls: topic for topic, cls in EVENT_BY_TOPIC.items()})
"""Event class to the topic it is produced to."""


Partition = tuple[str, int]
"""A (topic, partition) pair: the unit of ordering and of committed offsets."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where an event sits in Kafka: (topic, partition, offset). Dead letters carry it; replays are told by it."""

    topic: str
    partition: int
    offset: int

    @property
    def partition_of(self) -> Partition:
        """The (topic, partition) the event belongs to."""
        return self.topic, self.partition
