"""Bad bytes always give DecodeError naming topic, partition and offset; never another exception.

hypothesis is not installed in this project, so the properties run over a seeded random loop:
deterministic, and a failure names the seed and iteration to replay.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from schemas.catalog import load_catalog
from schemas.errors import DecodeError, SerdeError
from schemas.events import Event
from schemas.serde import EventSerde
from schemas.topics import EVENT_BY_TOPIC, PHOTO_DELETED, PHOTO_FAILED, PHOTO_READY, PHOTO_UPLOADS
from tests.schemas.samples import ALL_EVENTS, event_id, topic_of

SEED = 20250601
PARTITION, OFFSET = 7, 4242


def _rng() -> random.Random:
    return random.Random(SEED)  # reproducible fuzzing, not cryptography


@pytest.fixture(params=["single-object", "registry"])
def serde(request: pytest.FixtureRequest, mock_registry_url: Callable[[], str]) -> EventSerde:
    return EventSerde(mock_registry_url() if request.param == "registry" else None)


def _assert_decode_error(serde: EventSerde, data: bytes, topic: str, what: str) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        serde.decode(data, topic, PARTITION, OFFSET)
    error = caught.value
    message = str(error)
    assert f"topic={topic}" in message, what
    assert f"partition={PARTITION}" in message, what
    assert f"offset={OFFSET}" in message, what
    assert (error.topic, error.partition, error.offset) == (topic, PARTITION, OFFSET)
    assert isinstance(error, SerdeError)
    assert not error.retriable
    return error


def test_random_bytes(serde: EventSerde) -> None:
    rng = _rng()
    topics = sorted(EVENT_BY_TOPIC)
    for i in range(400):
        data = rng.randbytes(rng.randrange(0, 300))
        _assert_decode_error(serde, data, rng.choice(topics), f"seed={SEED} iteration={i}")


@pytest.mark.parametrize("event", ALL_EVENTS, ids=event_id)
def test_every_truncation(serde: EventSerde, event: Event) -> None:
    topic = topic_of(event)
    data = serde.encode(event, topic)
    for cut in range(len(data)):
        _assert_decode_error(serde, data[:cut], topic, f"truncated to {cut} of {len(data)} bytes")


@pytest.mark.parametrize("event", ALL_EVENTS, ids=event_id)
def test_valid_header_random_body(serde: EventSerde, event: Event) -> None:
    rng = _rng()
    topic = topic_of(event)
    header = serde.encode(event, topic)[: 10 if serde.wire_format == "single-object" else 5]
    for i in range(200):
        body = rng.randbytes(rng.randrange(1, 200))
        _assert_decode_error(serde, header + body, topic, f"seed={SEED} iteration={i}")


@pytest.mark.parametrize("event", ALL_EVENTS, ids=event_id)
def test_flipped_bytes_give_the_event_or_a_decode_error(serde: EventSerde, event: Event) -> None:
    # Avro has no checksum: a flipped byte inside a string can still decode. The property is that
    # nothing but a DecodeError ever escapes, and whatever decodes is of the topic's class.
    rng = _rng()
    topic = topic_of(event)
    data = serde.encode(event, topic)
    for i in range(200):
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        outcome: object
        try:
            outcome = serde.decode(bytes(mutated), topic, PARTITION, OFFSET)
        except DecodeError as error:
            outcome = error
        if isinstance(outcome, DecodeError):
            assert f"offset={OFFSET}" in str(outcome), f"seed={SEED} iteration={i}"
        else:
            assert type(outcome) is type(event), f"seed={SEED} iteration={i}"


def test_trailing_bytes_single_object() -> None:
    serde = EventSerde()
    data = serde.encode(ALL_EVENTS[0], PHOTO_UPLOADS)
    error = _assert_decode_error(serde, data + b"\x00", PHOTO_UPLOADS, "one extra byte")
    assert "unexpected bytes" in error.reason


def test_wrong_magic(serde: EventSerde) -> None:
    data = bytearray(serde.encode(ALL_EVENTS[0], PHOTO_UPLOADS))
    data[0] ^= 0xFF
    error = _assert_decode_error(serde, bytes(data), PHOTO_UPLOADS, "wrong magic")
    assert "magic" in error.reason


def test_unknown_fingerprint() -> None:
    serde = EventSerde()
    data = serde.encode(ALL_EVENTS[0], PHOTO_UPLOADS)
    known = {s.fingerprint for s in load_catalog().writers.values()}
    unknown = bytes(8)
    assert unknown not in known
    error = _assert_decode_error(serde, data[:2] + unknown + data[10:], PHOTO_UPLOADS, "unknown fingerprint")
    assert "unknown schema fingerprint 0000000000000000" in error.reason


def test_unknown_schema_id(mock_registry_url: Callable[[], str]) -> None:
    serde = EventSerde(mock_registry_url())
    data = serde.encode(ALL_EVENTS[0], PHOTO_UPLOADS)
    error = _assert_decode_error(serde, data[:1] + (999_999).to_bytes(4, "big") + data[5:], PHOTO_UPLOADS, "id")
    assert "unknown schema id 999999" in error.reason


@pytest.mark.parametrize(
    ("written_to", "read_from"),
    [(PHOTO_UPLOADS, PHOTO_FAILED), (PHOTO_DELETED, PHOTO_READY), (PHOTO_READY, PHOTO_DELETED)],
)
def test_another_topics_record(serde: EventSerde, written_to: str, read_from: str) -> None:
    # A subscriber of photo-ready and photo-deleted that mixes up the two gets an error, not an event.
    event = next(e for e in ALL_EVENTS if topic_of(e) == written_to)
    data = serde.encode(event, written_to)
    error = _assert_decode_error(serde, data, read_from, f"{type(event).__name__} read from {read_from}")
    assert type(event).schema_name() in error.reason


def test_unknown_topic(serde: EventSerde) -> None:
    _assert_decode_error(serde, serde.encode(ALL_EVENTS[0], PHOTO_UPLOADS), "photo-elsewhere", "unknown topic")


def test_not_bytes(serde: EventSerde) -> None:
    _assert_decode_error(serde, "C3 01 ...", PHOTO_UPLOADS, "a str")  # type: ignore[arg-type]
