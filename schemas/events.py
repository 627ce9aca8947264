"""The event records, one frozen dataclass per Avro record in this package's ``.avsc`` files.

Services build and read these, never raw dicts. Conventions, the same in every record:

- ids with Avro ``logicalType: uuid`` are ``uuid.UUID``;
- ``timestamp-millis`` fields are timezone-aware ``datetime`` (UTC on the way out of a decode);
  Avro keeps milliseconds, so finer precision is dropped on the wire;
- Avro arrays are tuples, so a record is immutable all the way down;
- class names equal the Avro record names (namespace ``photostream.events``), and field names and
  order mirror the ``.avsc`` (a test enforces both).

``to_dict`` gives the plain dict fastavro writes; ``from_dict`` takes what fastavro reads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Self

NAMESPACE = "photostream.events"


class FailureReason(StrEnum):
    """Reason code of a ``ProcessingFailed`` (Avro enum ``FailureReason``)."""

    CORRUPT = "corrupt"
    UNSUPPORTED = "unsupported"
    TOO_MANY_PIXELS = "too_many_pixels"
    MISSING_ORIGINAL = "missing_original"
    INTERNAL = "internal"
    CHECKSUM_MISMATCH = "checksum_mismatch"


class Stage(StrEnum):
    """Known values of ``ProcessingFailed.stage``; the field is a plain string so new stages stay readable."""

    GATEWAY = "gateway"
    PROCESSING = "processing"
    S3_SINK = "s3-sink"
    CLICKHOUSE_SINK = "clickhouse-sink"


class Record:
    """Behaviour shared by every record: validation and conversion to and from Avro dicts."""

    __slots__ = ()

    def __post_init__(self) -> None:
        # Only what Avro cannot catch at encode time: fastavro writes a naive datetime or a uuid
        # string without complaint, and the mistake would surface at every consumer instead.
        hints = _type_hints(type(self))
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            _check(type(self).__name__, field.name, hints[field.name], getattr(self, field.name))

    def to_dict(self) -> dict[str, Any]:
        """Return the record as the dict fastavro writes (nested records as dicts, arrays as lists).

        Returns:
            A new dict keyed by Avro field name.
        """
        return {f.name: _to_avro(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build the record from a dict as fastavro reads it.

        Args:
            data: Avro field name to value; fields missing here take the dataclass default.

        Returns:
            The record.

        Raises:
            TypeError: A required field is missing or a value has the wrong type.
            ValueError: A value is out of range, e.g. a malformed uuid or an unknown enum symbol.
        """
        hints = _type_hints(cls)
        values = {f.name: _from_avro(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}  # type: ignore[arg-type]
        return cls(**values)

    @classmethod
    def schema_name(cls) -> str:
        """Return the Avro full name of this record, e.g. ``photostream.events.UploadReceived``."""
        return f"{NAMESPACE}.{cls.__name__}"


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadReceived(Record):
    """A photo accepted by the gateway, its original durable in S3. Topic ``photo-uploads``."""

    upload_id: uuid.UUID
    photographer_id: str
    filename: str
    content_type: str
    bytes: int
    sha256: str
    bucket: str
    original_key: str
    title: str | None = None
    tags: tuple[str, ...] = ()
    received_at: datetime
    stored_at: datetime
    published_at: datetime
    gateway_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantRendered(Record):
    """One rendered variant of an image, with its bytes. Topic ``photo-variants``."""

    upload_id: uuid.UUID
    photographer_id: str
    variant: str
    format: str
    content_type: str
    width: int
    height: int
    data: bytes
    sha256: str
    variant_count: int
    received_at: datetime
    rendered_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageMetadata(Record):
    """Metadata read from an original; every field may be unknown (None)."""

    width: int | None = None
    height: int | None = None
    format: str | None = None
    bands: int | None = None
    has_alpha: bool | None = None
    bytes: int | None = None
    megapixels: float | None = None
    icc_profile: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    iso: int | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    focal_length_mm: float | None = None
    focal_length_35mm: int | None = None
    captured_at: str | None = None
    captured_at_utc_offset: str | None = None
    orientation: int | None = None
    software: str | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    gps_altitude: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageProcessed(Record):
    """Metadata, hashes, duplicate check and stage timings of an image. Topic ``photo-processed``."""

    upload_id: uuid.UUID
    photographer_id: str
    sha256: str
    metadata: ImageMetadata
    phash: str
    placeholder: str | None = None
    duplicate_of: uuid.UUID | None = None
    duplicate_kind: str | None = None
    variant_names: tuple[str, ...] = ()
    received_at: datetime
    processing_started_at: datetime
    processed_at: datetime
    decode_ms: int
    metadata_ms: int
    hash_ms: int
    render_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredVariant(Record):
    """One variant as stored in S3."""

    variant: str
    format: str
    content_type: str
    width: int
    height: int
    bytes: int
    key: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageReady(Record):
    """Every variant of an image is durable in S3. Topic ``photo-ready``."""

    upload_id: uuid.UUID
    photographer_id: str
    event_id: str
    variants: tuple[StoredVariant, ...]
    received_at: datetime
    ready_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessingFailed(Record):
    """A dead letter with a reason code. Topic ``photo-failed``."""

    upload_id: uuid.UUID
    photographer_id: str
    stage: str
    reason: FailureReason
    detail: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    received_at: datetime | None = None
    failed_at: datetime
    attempt: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessingStarted(Record):
    """A worker started on an upload; a progress signal that may be missing. Topic ``photo-processing``."""

    upload_id: uuid.UUID
    photographer_id: str
    received_at: datetime
    processing_started_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadDeleted(Record):
    """The photographer deleted an upload; nothing more is published for it. Topic ``photo-deleted``."""

    upload_id: uuid.UUID
    photographer_id: str
    sha256: str
    bucket: str
    original_key: str
    received_at: datetime
    deleted_at: datetime
    gateway_id: str

    def deletes(self, received_at: datetime) -> bool:
        """Whether an event of the upload received at ``received_at`` belongs to what this deleted.

        A later upload of the same content has the same id and a later ``received_at``: it lives on.
        """
        return received_at <= self.deleted_at


Event = (
    UploadReceived
    | VariantRendered
    | ImageProcessed
    | ImageReady
    | ProcessingFailed
    | UploadDeleted
    | ProcessingStarted
)
"""Any top-level event; each has its own topic (see ``schemas.topics``)."""

EVENT_TYPES: tuple[type[Record], ...] = typing.get_args(Event)
"""The top-level event classes, in topic order."""


_hints_cache: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    # Resolved once per class: annotations are strings under `from __future__ import annotations`.
    # A benign race at worst computes the same dict twice.
    hints = _hints_cache.get(cls)
    if hints is None:
        hints = _hints_cache[cls] = typing.get_type_hints(cls)
    return hints


def _optional_inner(hint: Any) -> Any:
    """Return X for ``X | None``, else the hint unchanged."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _check(record: str, name: str, hint: Any, value: Any) -> None:
    inner = _optional_inner(hint)
    if value is None:
        return
    if inner is datetime and (not isinstance(value, datetime) or value.utcoffset() is None):
        raise TypeError(f"{record}.{name} must be a timezone-aware datetime, got {value!r}")
    if inner is uuid.UUID and not isinstance(value, uuid.UUID):
        raise TypeError(f"{record}.{name} must be a uuid.UUID, got {value!r}")


def _to_avro(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_to_avro(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _from_avro(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    inner = _optional_inner(hint)
    origin = typing.get_origin(inner)
    if origin is tuple:
        item = typing.get_args(inner)[0]
        return tuple(_from_avro(item, v) for v in value)
    if isinstance(inner, type):
        if issubclass(inner, Record):
            return inner.from_dict(value)
        if issubclass(inner, Enum):
            return inner(value)
        if inner is uuid.UUID and not isinstance(value, uuid.UUID):
            return uuid.UUID(value)
    return value
