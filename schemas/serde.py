"""The one serde every service uses: events to Kafka message values and back.

    serde = EventSerde()                       # Avro single-object encoding, shipped schemas
    serde = EventSerde("http://registry:8081") # Confluent wire format via a schema registry
    value = serde.encode(event, PHOTO_UPLOADS)
    event = serde.decode(msg.value(), msg.topic(), msg.partition(), msg.offset())

Errors (all in ``schemas.errors``)::

    SerdeError
    ├── SchemaLoadError   shipped .avsc invalid (at construction)
    ├── EncodeError       event of the wrong class for the topic, or a value Avro cannot hold
    ├── DecodeError       any bad bytes: bad magic, unknown fingerprint/schema id, corrupt,
    │                     truncated, another topic's record; message names topic/partition/offset
    └── RegistryError     registry refused or unreachable (``retriable`` when transient)

Without a registry the package imports no Kafka client at all; ``schemas.confluent`` (which needs
confluent-kafka's schema-registry extras) is imported only when a registry URL is given.
"""

from __future__ import annotations

from typing import Any, Protocol

import fastavro.validation

from schemas.catalog import Catalog, ShippedSchema, load_catalog
from schemas.errors import DecodeError, EncodeError
from schemas.events import Event, Record
from schemas.single_object import SingleObjectFormat
from schemas.topics import EVENT_BY_TOPIC


class WireFormat(Protocol):
    """How a validated Avro record is framed on the wire; the two adapters implement it."""

    name: str

    def encode(self, record: dict[str, Any], schema: ShippedSchema, topic: str) -> bytes:
        """Frame and write ``record`` with ``schema``."""
        ...

    def decode(
        self, data: bytes, reader: ShippedSchema, topic: str, partition: int | None, offset: int | None
    ) -> dict[str, Any]:
        """Read ``data`` into a dict shaped by ``reader``; bad bytes raise ``DecodeError``."""
        ...


class EventSerde:
    """Encode events for their topic and decode message values back into events.

    Thread-safe; build one per process and share it.

    Args:
        registry_url: Schema registry URL (``http(s)://`` or ``mock://``); None for single-object
            encoding against the schemas shipped in this package.
        auto_register: With a registry, register the shipped schema on first use.

    Raises:
        SchemaLoadError: The shipped schemas are invalid.
    """

    def __init__(self, registry_url: str | None = None, *, auto_register: bool = True) -> None:
        self._catalog: Catalog = load_catalog()
        self._format: WireFormat
        if registry_url:
            from schemas.confluent import ConfluentFormat  # lazy: the only Kafka-client import

            self._format = ConfluentFormat(registry_url, auto_register=auto_register)
        else:
            self._format = SingleObjectFormat(self._catalog)

    @property
    def wire_format(self) -> str:
        """``"single-object"`` or ``"confluent"``."""
        return self._format.name

    def schema_for(self, event_type: type[Record]) -> ShippedSchema:
        """Return the current shipped schema of an event or nested record class.

        Args:
            event_type: A class from ``schemas.events``.

        Returns:
            Its schema, with text, canonical form and fingerprint.

        Raises:
            KeyError: The class has no schema file of its own (nested records live in their event's).
        """
        return self._catalog.current[event_type.schema_name()]

    def encode(self, event: Event, topic: str) -> bytes:
        """Encode an event as the value of a message on ``topic``.

        Args:
            event: The event; its class must be the one ``topic`` carries.
            topic: Destination topic, one of ``schemas.topics``.

        Returns:
            The message value.

        Raises:
            EncodeError: Unknown topic, wrong event class for it, or a value the schema cannot hold
                (e.g. an int out of 32-bit range).
            RegistryError: With a registry: it refused or could not be reached.
        """
        expected = EVENT_BY_TOPIC.get(topic)
        if expected is None:
            raise EncodeError(f"unknown topic {topic!r}; known: {sorted(EVENT_BY_TOPIC)}")
        if type(event) is not expected:
            raise EncodeError(f"topic {topic} carries {expected.__name__}, not {type(event).__name__}")
        schema = self.schema_for(expected)
        record = event.to_dict()
        try:
            # fastavro's writer does not range-check ints or check types everywhere; a bad value
            # must fail here, at the producer, not at every consumer.
            fastavro.validation.validate(record, schema.parsed, raise_errors=True)
        except fastavro.validation.ValidationError as exc:
            raise EncodeError(f"{expected.__name__} does not fit its schema: {exc}") from exc
        return self._format.encode(record, schema, topic)

    def decode(self, data: bytes, topic: str, partition: int | None = None, offset: int | None = None) -> Event:
        """Decode a message value read from ``topic``.

        Args:
            data: The message value.
            topic: Topic it was read from; decides the event class.
            partition: Partition, named in errors.
            offset: Offset, named in errors.

        Returns:
            The event, shaped by the current schema whatever schema version wrote it.

        Raises:
            DecodeError: The bytes are not a valid event for this topic, for any reason.
            RegistryError: With a registry: it failed while fetching the writer schema.
        """
        expected = EVENT_BY_TOPIC.get(topic)
        if expected is None:
            raise DecodeError(f"unknown topic; known: {sorted(EVENT_BY_TOPIC)}", topic, partition, offset)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"expected bytes, got {type(data).__name__}", topic, partition, offset)
        record = self._format.decode(bytes(data), self.schema_for(expected), topic, partition, offset)
        try:
            event: Event = expected.from_dict(record)  # type: ignore[assignment]
        except (TypeError, ValueError, KeyError) as exc:
            raise DecodeError(f"record does not fit {expected.__name__}: {exc}", topic, partition, offset) from exc
        return event
