"""``photostream events``: a topic's events decoded as they arrive, and the topics' schemas."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from photostream.cli import main
from photostream.topics import ensure_topics
from schemas.events import UploadReceived
from schemas.serde import EventSerde
from schemas.topics import EVENT_BY_TOPIC, PHOTO_UPLOADS


def _upload(photographer: str, n: int) -> UploadReceived:
    now = datetime.now(UTC)
    upload_id = uuid.uuid4()
    return UploadReceived(
        upload_id=upload_id,
        photographer_id=photographer,
        filename=f"IMG_{n:04d}.JPG",
        content_type="image/jpeg",
        bytes=1000 + n,
        sha256="0" * 64,
        bucket="photostream",
        original_key=f"originals/{photographer}/{upload_id}",
        received_at=now,
        stored_at=now,
        published_at=now,
        gateway_id="test",
    )


def test_schemas_lists_every_topic_with_its_fingerprint():
    result = CliRunner().invoke(main, ["events", "schemas"])
    assert result.exit_code == 0, result.output
    serde = EventSerde()
    for topic, event_type in EVENT_BY_TOPIC.items():
        (line,) = [line for line in result.output.splitlines() if line.startswith(topic + " ")]
        assert event_type.__name__ in line
        assert serde.schema_for(event_type).fingerprint.hex() in line
        assert "single-object" in line


@pytest.mark.integration
def test_tail_decodes_one_photographers_events_and_names_a_bad_message(local_stack, unique_name, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", local_stack.kafka.bootstrap_servers)
    ensure_topics(local_stack.kafka)
    photographer, other = unique_name("ph"), unique_name("ph")
    first, second = _upload(photographer, 1), _upload(photographer, 2)
    serde = EventSerde()
    producer = Producer({"bootstrap.servers": local_stack.kafka.bootstrap_servers})
    for key, value in (
        (photographer, serde.encode(first, PHOTO_UPLOADS)),
        (other, serde.encode(_upload(other, 3), PHOTO_UPLOADS)),
        (photographer, b"not an event"),
        (photographer, serde.encode(second, PHOTO_UPLOADS)),
    ):
        producer.produce(PHOTO_UPLOADS, key=key.encode(), value=value)
    assert producer.flush(10) == 0

    args = ["events", "tail", PHOTO_UPLOADS, "--from-beginning", "--photographer", photographer, "--limit", "3"]
    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line.get("type") for line in lines] == ["UploadReceived", None, "UploadReceived"]
    decoded = [line["event"]["upload_id"] for line in (lines[0], lines[2])]
    assert decoded == [str(first.upload_id), str(second.upload_id)]
    assert all(line["key"] == photographer for line in lines)
    bad = lines[1]
    # Between the two events of its photographer (another photographer's may share the partition).
    assert bad["partition"] == lines[0]["partition"] == lines[2]["partition"]
    assert lines[0]["offset"] < bad["offset"] < lines[2]["offset"]
    assert "bad magic" in bad["error"], bad
    assert f"offset={bad['offset']}" in bad["error"], bad

    table = CliRunner().invoke(main, [*args[:-2], "--limit", "1", "--format", "table"])
    assert table.exit_code == 0, table.output
    assert f"{PHOTO_UPLOADS}/{lines[0]['partition']}@{lines[0]['offset']}" in table.output
    assert f"UploadReceived  {first.upload_id}" in table.output


def test_tail_of_an_unreachable_broker_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(main, ["events", "tail", PHOTO_UPLOADS, "--limit", "1"])
    assert result.exit_code == 1
    assert "no broker answered at 127.0.0.1:1" in result.output
