"""``photostream events``: the pipeline's topics as a subscriber sees them, decoded, for operators and authors.

``tail`` reads one topic from its end (or its beginning) with a consumer of its own that commits nothing, so
it never moves a real subscriber's offsets, and turns each message into one line: the event as JSON, or a
short table row. A message that does not decode becomes a line naming its partition, offset and what is
wrong with it; the tail goes on. ``schema_rows`` lists each topic's event, schema and fingerprint (the eight
bytes after ``C3 01`` in a single-object encoded value).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Message, TopicPartition

from photostream.config import KafkaSettings
from photostream.warehouse import jsonable
from schemas.errors import DecodeError
from schemas.events import Event
from schemas.serde import EventSerde
from schemas.topics import EVENT_BY_TOPIC


class TopicUnavailable(Exception):
    """The brokers did not answer, or do not have the topic."""


@dataclass(frozen=True)
class Read:
    """One message of the topic: its event, or why it is not one."""

    topic: str
    partition: int
    offset: int
    key: str | None
    event: Event | None = None
    error: str | None = None

    def as_json(self) -> str:
        """One JSON line: where the message sits, and the event's fields (or ``error``)."""
        line: dict[str, Any] = {"topic": self.topic, "partition": self.partition, "offset": self.offset}
        line["key"] = self.key
        if self.event is None:
            line["error"] = self.error
        else:
            line["type"] = type(self.event).__name__
            line["event"] = {name: _shown(value) for name, value in self.event.to_dict().items()}
        return json.dumps(line, ensure_ascii=False)

    def as_row(self) -> str:
        """One short line for a terminal: position, photographer, event type and upload."""
        where = f"{self.topic}/{self.partition}@{self.offset}"
        if self.event is None:
            return f"{where}  {self.key or '-'}  UNREADABLE  {self.error}"
        fields = self.event.to_dict()
        detail = " ".join(
            f"{name}={_shown(fields[name])}"
            for name in ("variant", "format", "duplicate_of", "reason", "stage", "bytes")
            if fields.get(name) is not None
        )
        return f"{where}  {self.key or '-'}  {type(self.event).__name__}  {fields.get('upload_id')}  {detail}".rstrip()


def _shown(value: Any) -> Any:
    """A field as a line can show it: image bytes by their size, the rest as JSON carries it."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return jsonable(value)


def tail(
    kafka: KafkaSettings,
    serde: EventSerde,
    topic: str,
    *,
    from_beginning: bool = False,
    photographer_id: str | None = None,
) -> Generator[Read, None, None]:
    """Yield the topic's messages as they arrive, decoded (only ``photographer_id``'s when given), forever.

    Raises:
        TopicUnavailable: No broker answered within 10 s, or the topic does not exist.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            # A group of its own that never commits: a tail moves nobody's offsets.
            "group.id": f"photostream-events-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise TopicUnavailable(f"no broker answered at {kafka.bootstrap_servers}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise TopicUnavailable(f"no topic {topic} at {kafka.bootstrap_servers}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, partition, start) for partition in sorted(found.partitions)])
        wanted = photographer_id.encode() if photographer_id is not None else None
        while True:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is not None or (wanted is not None and message.key() != wanted):
                    continue
                yield _read(message, serde)
    finally:
        consumer.close()


def _read(message: Message, serde: EventSerde) -> Read:
    topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
    raw_key = message.key()
    key = raw_key.decode(errors="replace") if isinstance(raw_key, bytes) else raw_key
    value = message.value()
    if value is None:
        return Read(topic, partition, offset, key, error="no value (a tombstone)")
    try:
        return Read(topic, partition, offset, key, event=serde.decode(value, topic, partition, offset))
    except DecodeError as exc:
        return Read(topic, partition, offset, key, error=str(exc))


def schema_rows(serde: EventSerde) -> list[dict[str, str]]:
    """Per topic: the event it carries, its schema's full name, fingerprint and the wire format."""
    rows = []
    for topic, event_type in EVENT_BY_TOPIC.items():
        schema = serde.schema_for(event_type)
        rows.append(
            {
                "topic": topic,
                "event": event_type.__name__,
                "schema": schema.name,
                "fingerprint": schema.fingerprint.hex(),
                "wire format": serde.wire_format,
            }
        )
    return rows
