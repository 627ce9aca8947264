"""Confluent schema-registry wire format, used when a registry URL is configured.

Layout: magic byte ``00`` | 4-byte big-endian schema id | Avro binary body. Encoding and decoding go
through confluent-kafka's ``AvroSerializer`` and ``AvroDeserializer`` with the topic-name subject
strategy (``<topic>-value``). This is the only module of the package that imports a Kafka client
library, and it is imported only when a registry URL is given.

``mock://`` URLs use confluent-kafka's in-memory registry. Serdes given the same ``mock://`` URL in
one process share one registry, as services sharing a real registry would.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.catalog import ShippedSchema
from schemas.errors import DecodeError, EncodeError, RegistryError

MAGIC = b"\x00"
HEADER_SIZE = 5

_mock_clients: dict[str, SchemaRegistryClient] = {}
_mock_lock = threading.Lock()


def registry_client(url: str) -> SchemaRegistryClient:
    """Return a client for ``url``; one shared in-memory registry per ``mock://`` URL.

    Args:
        url: ``http(s)://`` registry URL, or ``mock://<scope>`` for the in-memory one.

    Returns:
        The client.
    """
    if not url.startswith("mock://"):
        return SchemaRegistryClient({"url": url})
    with _mock_lock:
        if url not in _mock_clients:
            # new_client, not the constructor: only it returns the in-memory mock for mock:// URLs.
            _mock_clients[url] = SchemaRegistryClient.new_client({"url": url})
        return _mock_clients[url]


def _registry_error(action: str, exc: Exception) -> RegistryError:
    status = getattr(exc, "http_status_code", None)
    # Server errors, throttling and transport failures (no status) may pass; 4xx will not.
    retriable = status is None or status < 0 or status >= 500 or status == 429
    return RegistryError(f"schema registry failed to {action}: {exc}", retriable=retriable)


class ConfluentFormat:
    """Encode and decode with the Confluent wire format.

    Args:
        url: Schema registry URL.
        auto_register: Register the shipped schema on first encode; turn off where schemas are
            registered by a deploy step and producers must not change the registry.
    """

    name = "confluent"

    def __init__(self, url: str, *, auto_register: bool = True) -> None:
        self._client = registry_client(url)
        self._auto_register = auto_register
        self._serializers: dict[str, AvroSerializer] = {}
        self._deserializers: dict[str, AvroDeserializer] = {}
        self._lock = threading.Lock()

    def _serializer(self, schema: ShippedSchema) -> AvroSerializer:
        with self._lock:
            if schema.name not in self._serializers:
                self._serializers[schema.name] = AvroSerializer(
                    self._client, schema.text, conf={"auto.register.schemas": self._auto_register}
                )
            return self._serializers[schema.name]

    def _deserializer(self, schema: ShippedSchema) -> AvroDeserializer:
        with self._lock:
            if schema.name not in self._deserializers:
                # The current schema as reader: the registry's writer schema is resolved into it.
                self._deserializers[schema.name] = AvroDeserializer(self._client, schema.text)
            return self._deserializers[schema.name]

    def encode(self, record: dict[str, Any], schema: ShippedSchema, topic: str) -> bytes:
        """Register (or look up) the schema under ``<topic>-value`` and write the record.

        Args:
            record: Avro dict, already validated against ``schema``.
            schema: The writer schema.
            topic: Topic the bytes are for; names the registry subject.

        Returns:
            The framed bytes.

        Raises:
            RegistryError: The registry refused or could not be reached.
            EncodeError: The serializer returned nothing.
        """
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            data = self._serializer(schema)(record, ctx)
        except SchemaRegistryError as exc:
            raise _registry_error(f"register {schema.name} for {topic}", exc) from exc
        except (ValueError, TypeError) as exc:
            # The record was validated already, so what is left here is the registry round trip.
            raise EncodeError(f"cannot encode {schema.name} for {topic}: {exc}") from exc
        except Exception as exc:  # transport errors of the registry's HTTP client
            raise _registry_error(f"register {schema.name} for {topic}", exc) from exc
        if data is None:
            raise EncodeError(f"serializer returned nothing for {schema.name}")
        return data

    def decode(
        self, data: bytes, reader: ShippedSchema, topic: str, partition: int | None, offset: int | None
    ) -> dict[str, Any]:
        """Fetch the writer schema by id and read the record into ``reader``.

        Args:
            data: The message value.
            reader: The current schema of the record the topic carries.
            topic: Where the bytes came from.
            partition: Partition, for the error message.
            offset: Offset, for the error message.

        Returns:
            The record as fastavro reads it.

        Raises:
            DecodeError: Bad magic byte, unknown schema id, a writer of another record, or a
                corrupt or truncated body.
            RegistryError: The registry failed while fetching the writer schema; nothing is known
                about the bytes yet, so this is not a dead letter.
        """

        def fail(reason: str) -> DecodeError:
            return DecodeError(reason, topic, partition, offset)

        if len(data) <= HEADER_SIZE:
            raise fail(f"{len(data)} bytes is too short for the {HEADER_SIZE}-byte registry header and a body")
        if data[:1] != MAGIC:
            raise fail(f"bad magic byte {data[:1].hex()}, expected {MAGIC.hex()} (Confluent wire format)")
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        # Fetched here first, so a registry outage (retriable) is told apart from bad bytes.
        try:
            writer = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise fail(f"unknown schema id {schema_id}") from exc
            raise _registry_error(f"fetch schema id {schema_id}", exc) from exc
        except Exception as exc:  # transport errors of the registry's HTTP client
            raise _registry_error(f"fetch schema id {schema_id}", exc) from exc
        writer_name = _record_name(writer.schema_str)
        if writer_name != reader.name:
            raise fail(f"schema id {schema_id} is {writer_name}, this topic carries {reader.name}")
        try:
            record = self._deserializer(reader)(data, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:  # hostile bytes make fastavro raise many undocumented types
            raise fail(f"corrupt body: {type(exc).__name__}: {exc}") from exc
        if not isinstance(record, dict):
            raise fail(f"expected a record, read {type(record).__name__}")
        return record


def _record_name(schema_str: str | None) -> str | None:
    try:
        raw = json.loads(schema_str or "")
    except ValueError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    name: str = raw["name"]
    namespace = raw.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
