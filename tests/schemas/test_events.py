"""The dataclasses mirror the .avsc files and convert to and from Avro dicts faithfully."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta

import pytest

from schemas import events
from schemas.catalog import load_catalog
from schemas.events import (
    EVENT_TYPES,
    FailureReason,
    ImageMetadata,
    Record,
    StoredVariant,
    UploadDeleted,
    UploadReceived,
)
from schemas.topics import EVENT_BY_TOPIC, SUBSCRIBABLE_TOPICS, TOPIC_BY_EVENT
from tests.schemas.samples import ALL_EVENTS, T0, UPLOAD_ID, event_id


def _records_in(schema: object, found: dict[str, dict]) -> dict[str, dict]:
    """Every record definition in a raw (JSON) schema, by short name."""
    if isinstance(schema, list):
        for s in schema:
            _records_in(s, found)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            found[schema["name"]] = schema
            for f in schema["fields"]:
                _records_in(f["type"], found)
        for key in ("items", "values"):
            if key in schema:
                _records_in(schema[key], found)
        if isinstance(schema.get("type"), dict | list):
            _records_in(schema["type"], found)
    return found


def _all_raw_records() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for shipped in load_catalog().current.values():
        _records_in(json.loads(shipped.text), found)
    return found


RECORD_CLASSES = [*EVENT_TYPES, ImageMetadata, StoredVariant]


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
def test_dataclass_fields_mirror_the_avsc(cls: type[Record]) -> None:
    raw = _all_raw_records()[cls.__name__]
    assert [f.name for f in dataclasses.fields(cls)] == [f["name"] for f in raw["fields"]]
    for field, avro in zip(dataclasses.fields(cls), raw["fields"], strict=True):
        if "default" not in avro:
            assert field.default is dataclasses.MISSING, f"{cls.__name__}.{field.name} has a default the .avsc lacks"
        else:
            default = field.default
            # Avro arrays are tuples here; the .avsc spells the empty default as [].
            expected = tuple(avro["default"]) if isinstance(avro["default"], list) else avro["default"]
            assert default == expected, f"{cls.__name__}.{field.name}"


def test_every_record_and_field_is_documented() -> None:
    for name, raw in _all_raw_records().items():
        assert raw.get("doc"), name
        assert raw.get("namespace", "photostream.events") == "photostream.events"
        for f in raw["fields"]:
            assert f.get("doc"), f"{name}.{f['name']}"


def test_each_event_has_its_own_schema_file_and_topic() -> None:
    catalog = load_catalog()
    assert sorted(catalog.current) == sorted(cls.schema_name() for cls in EVENT_TYPES)
    assert set(EVENT_BY_TOPIC.values()) == set(EVENT_TYPES)
    assert {TOPIC_BY_EVENT[cls] for cls in EVENT_TYPES} == {
        "photo-uploads",
        "photo-variants",
        "photo-processed",
        "photo-ready",
        "photo-failed",
        "photo-deleted",
        "photo-processing",
    }


def test_the_subscribable_topics_are_every_topic_but_the_internal_ones() -> None:
    # The published contract (docs/subscribers.md, docs/asyncapi.yaml, GET /v1/schemas, the
    # both-ways compatibility of schemas/history.py) is derived from this tuple.
    assert SUBSCRIBABLE_TOPICS == ("photo-uploads", "photo-processed", "photo-ready", "photo-failed", "photo-deleted")
    # Internal: variant bytes on their way to the S3 sink, and the best-effort processing-started signal.
    assert set(SUBSCRIBABLE_TOPICS) == set(EVENT_BY_TOPIC) - {"photo-variants", "photo-processing"}
    assert EVENT_BY_TOPIC["photo-deleted"] is UploadDeleted


def test_upload_deleted_deletes_its_incarnation_and_not_a_later_upload_of_the_same_content() -> None:
    deleted = next(e for e in ALL_EVENTS if isinstance(e, UploadDeleted) and e.deleted_at > e.received_at)
    # Events of the deleted upload carry its received_at; anything received up to the delete goes.
    assert deleted.deletes(deleted.received_at)
    assert deleted.deletes(deleted.received_at - timedelta(days=1))
    assert deleted.deletes(deleted.deleted_at)
    # The same content uploaded again after the delete: same upload_id, later received_at, it lives.
    assert not deleted.deletes(deleted.deleted_at + timedelta(milliseconds=1))
    assert not deleted.deletes(deleted.deleted_at + timedelta(days=3))


def test_failure_reason_enum_matches_the_avsc_and_defaults_to_internal() -> None:
    raw = json.loads(load_catalog().current["photostream.events.ProcessingFailed"].text)
    reason = next(f for f in raw["fields"] if f["name"] == "reason")["type"]
    assert reason["symbols"] == [r.value for r in FailureReason]
    assert reason["default"] == "internal"


@pytest.mark.parametrize("event", ALL_EVENTS, ids=event_id)
def test_to_dict_from_dict_round_trip(event: events.Event) -> None:
    assert type(event).from_dict(event.to_dict()) == event


def test_to_dict_gives_plain_avro_values() -> None:
    ready = next(e for e in ALL_EVENTS if isinstance(e, events.ImageReady) and e.variants)
    as_dict = ready.to_dict()
    assert isinstance(as_dict["variants"], list)
    assert isinstance(as_dict["variants"][0], dict)
    failed = next(e for e in ALL_EVENTS if isinstance(e, events.ProcessingFailed))
    assert type(failed.to_dict()["reason"]) is str


def test_from_dict_accepts_uuid_strings_and_applies_defaults() -> None:
    data = {
        "upload_id": str(UPLOAD_ID),
        "photographer_id": "p",
        "filename": "a.jpg",
        "content_type": "image/jpeg",
        "bytes": 1,
        "sha256": "00",
        "bucket": "b",
        "original_key": "k",
        "received_at": T0,
        "stored_at": T0,
        "published_at": T0,
        "gateway_id": "g",
    }
    upload = UploadReceived.from_dict(data)
    assert upload.upload_id == UPLOAD_ID
    assert upload.title is None
    assert upload.tags == ()


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(TypeError, match="timezone-aware"):
        dataclasses.replace(ALL_EVENTS[0], received_at=datetime(2025, 1, 1))


def test_uuid_fields_refuse_strings() -> None:
    with pytest.raises(TypeError, match=r"uuid\.UUID"):
        dataclasses.replace(ALL_EVENTS[0], upload_id=str(uuid.uuid4()))


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ALL_EVENTS[0].photographer_id = "someone else"  # type: ignore[misc]
