"""EventSerde round trips in both wire formats, refuses bad events, and resolves old writers."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable

import fastavro
import pytest

from schemas.catalog import Catalog, ShippedSchema, load_catalog, parse_schema_text
from schemas.errors import DecodeError, EncodeError, RegistryError
from schemas.events import Event, FailureReason, ImageReady, ProcessingFailed, UploadReceived
from schemas.serde import EventSerde
from schemas.single_object import MAGIC, SingleObjectFormat
from schemas.topics import PHOTO_DELETED, PHOTO_FAILED, PHOTO_READY, PHOTO_UPLOADS
from tests.schemas.samples import ALL_EVENTS, event_id, topic_of


@pytest.mark.parametrize("event", ALL_EVENTS, ids=event_id)
def test_round_trip_single_object(event: Event) -> None:
    serde = EventSerde()
    assert serde.wire_format == "single-object"
    data = serde.encode(event, topic_of(event))
    assert data[:2] == MAGIC
    assert serde.decode(data, topic_of(event), 0, 1) == event


@pytest.mark.parametrize("event", ALL_EVENTS, ids=event_id)
def test_round_trip_mock_registry(event: Event, mock_registry_url: Callable[[], str]) -> None:
    url = mock_registry_url()
    producer, consumer = EventSerde(url), EventSerde(url)
    assert producer.wire_format == "confluent"
    data = producer.encode(event, topic_of(event))
    assert data[:1] == b"\x00"
    # A separate serde on the same registry URL, as a consumer process would be.
    assert consumer.decode(data, topic_of(event), 2, 3) == event


def test_registry_header_carries_the_registered_schema_id(mock_registry_url: Callable[[], str]) -> None:
    url = mock_registry_url()
    serde = EventSerde(url)
    event = ALL_EVENTS[0]
    data = serde.encode(event, PHOTO_UPLOADS)
    from schemas.confluent import registry_client

    registered = registry_client(url).get_latest_version(f"{PHOTO_UPLOADS}-value")
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    assert json.loads(registered.schema.schema_str)["name"] == "UploadReceived"


def test_encode_refuses_the_wrong_event_for_a_topic() -> None:
    with pytest.raises(EncodeError, match="photo-ready carries ImageReady, not UploadReceived"):
        EventSerde().encode(ALL_EVENTS[0], PHOTO_READY)
    ready = next(e for e in ALL_EVENTS if isinstance(e, ImageReady))
    with pytest.raises(EncodeError, match="photo-deleted carries UploadDeleted, not ImageReady"):
        EventSerde().encode(ready, PHOTO_DELETED)


def test_encode_refuses_an_unknown_topic() -> None:
    with pytest.raises(EncodeError, match="unknown topic"):
        EventSerde().encode(ALL_EVENTS[0], "photo-nope")


@pytest.mark.parametrize("registry", [False, True], ids=["single-object", "registry"])
def test_encode_refuses_values_the_schema_cannot_hold(registry: bool, mock_registry_url: Callable[[], str]) -> None:
    serde = EventSerde(mock_registry_url() if registry else None)
    failed = next(e for e in ALL_EVENTS if isinstance(e, ProcessingFailed))
    with pytest.raises(EncodeError, match="does not fit"):
        serde.encode(dataclasses.replace(failed, attempt=2**31), PHOTO_FAILED)
    with pytest.raises(EncodeError, match="does not fit"):
        serde.encode(dataclasses.replace(failed, detail=None), PHOTO_FAILED)  # type: ignore[arg-type]


def _old_upload_schema() -> ShippedSchema:
    """UploadReceived as a hypothetical v0: no title, no tags."""
    raw = json.loads(load_catalog().current["photostream.events.UploadReceived"].text)
    raw["fields"] = [f for f in raw["fields"] if f["name"] not in ("title", "tags")]
    return parse_schema_text(json.dumps(raw))


def _newer_failed_schema() -> ShippedSchema:
    """ProcessingFailed as a hypothetical future version with a reason this build does not know."""
    raw = json.loads(load_catalog().current["photostream.events.ProcessingFailed"].text)
    reason = next(f for f in raw["fields"] if f["name"] == "reason")
    reason["type"]["symbols"].append("timed_out")
    return parse_schema_text(json.dumps(raw))


def _single_object(schema: ShippedSchema, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema.parsed, record)
    return MAGIC + schema.fingerprint + buf.getvalue()


def test_single_object_reads_an_old_writer_into_the_current_reader() -> None:
    old = _old_upload_schema()
    catalog = load_catalog()
    fmt = SingleObjectFormat(Catalog(current=catalog.current, writers={**catalog.writers, old.fingerprint: old}))
    upload = next(e for e in ALL_EVENTS if isinstance(e, UploadReceived) and e.title)
    record = {k: v for k, v in upload.to_dict().items() if k not in ("title", "tags")}
    decoded = fmt.decode(_single_object(old, record), catalog.current[old.name], PHOTO_UPLOADS, partition=0, offset=0)
    assert UploadReceived.from_dict(decoded) == dataclasses.replace(upload, title=None, tags=())


def test_an_unknown_failure_reason_from_a_newer_writer_reads_as_internal() -> None:
    newer = _newer_failed_schema()
    catalog = load_catalog()
    fmt = SingleObjectFormat(Catalog(current=catalog.current, writers={**catalog.writers, newer.fingerprint: newer}))
    failed = next(e for e in ALL_EVENTS if isinstance(e, ProcessingFailed))
    record = {**failed.to_dict(), "reason": "timed_out"}
    decoded = fmt.decode(_single_object(newer, record), catalog.current[newer.name], PHOTO_FAILED, 0, 0)
    assert ProcessingFailed.from_dict(decoded).reason is FailureReason.INTERNAL


def test_registry_reads_an_old_writer_into_the_current_reader(mock_registry_url: Callable[[], str]) -> None:
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from schemas.confluent import registry_client

    url = mock_registry_url()
    old = _old_upload_schema()
    upload = next(e for e in ALL_EVENTS if isinstance(e, UploadReceived) and e.title)
    record = {k: v for k, v in upload.to_dict().items() if k not in ("title", "tags")}
    old_producer = AvroSerializer(registry_client(url), old.text)
    data = old_producer(record, SerializationContext(PHOTO_UPLOADS, MessageField.VALUE))
    assert EventSerde(url).decode(data, PHOTO_UPLOADS, 0, 0) == dataclasses.replace(upload, title=None, tags=())


def test_registry_outage_is_a_retriable_registry_error(
    mock_registry_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryError

    from schemas.confluent import registry_client

    url = mock_registry_url()
    serde = EventSerde(url)
    data = serde.encode(ALL_EVENTS[0], PHOTO_UPLOADS)

    def unavailable(*args: object, **kwargs: object) -> None:
        raise SchemaRegistryError(503, 50301, "unavailable")

    monkeypatch.setattr(registry_client(url), "get_schema", unavailable)
    with pytest.raises(RegistryError) as caught:
        serde.decode(data, PHOTO_UPLOADS, 0, 0)
    assert caught.value.retriable
    assert not isinstance(caught.value, DecodeError)


def test_decode_accepts_memoryview_and_bytearray() -> None:
    serde = EventSerde()
    data = serde.encode(ALL_EVENTS[0], PHOTO_UPLOADS)
    assert serde.decode(memoryview(data), PHOTO_UPLOADS) == ALL_EVENTS[0]
    assert serde.decode(bytearray(data), PHOTO_UPLOADS) == ALL_EVENTS[0]
