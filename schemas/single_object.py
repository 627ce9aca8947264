"""Avro single-object encoding, the default wire format (no schema registry needed).

Layout, from the Avro specification::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema | Avro binary body

The writer schema is found by fingerprint among the shipped schemas (current and ``history/``),
and the body is read with schema resolution into the current reader schema.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro

from schemas.catalog import Catalog, ShippedSchema
from schemas.errors import DecodeError

MAGIC = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE


class SingleObjectFormat:
    """Encode and decode bodies framed with the single-object header.

    Args:
        catalog: The schemas this build knows; writers are looked up by fingerprint.
    """

    name = "single-object"

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def encode(self, record: dict[str, Any], schema: ShippedSchema, topic: str) -> bytes:
        """Write ``record`` with ``schema`` behind the single-object header.

        Args:
            record: Avro dict, already validated against ``schema``.
            schema: The writer schema.
            topic: Unused here; the registry format needs it for the subject.

        Returns:
            The framed bytes.
        """
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(schema.fingerprint)
        fastavro.schemaless_writer(buf, schema.parsed, record)
        return buf.getvalue()

    def decode(
        self, data: bytes, reader: ShippedSchema, topic: str, partition: int | None, offset: int | None
    ) -> dict[str, Any]:
        """Read framed bytes into an Avro dict shaped by ``reader``.

        Args:
            data: The message value.
            reader: The current schema of the record the topic carries.
            topic: Where the bytes came from, for the error message.
            partition: Partition, for the error message.
            offset: Offset, for the error message.

        Returns:
            The record as fastavro reads it.

        Raises:
            DecodeError: Bad magic, unknown fingerprint, a writer of another record, or a corrupt,
                truncated or overlong body.
        """

        def fail(reason: str) -> DecodeError:
            return DecodeError(reason, topic, partition, offset)

        if len(data) < HEADER_SIZE:
            raise fail(f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte single-object header")
        if data[:2] != MAGIC:
            raise fail(f"bad magic {data[:2].hex()}, expected {MAGIC.hex()} (Avro single-object encoding)")
        fp = bytes(data[2:HEADER_SIZE])
        writer = self._catalog.writers.get(fp)
        if writer is None:
            raise fail(f"unknown schema fingerprint {fp.hex()}")
        if writer.name != reader.name:
            raise fail(f"writer schema is {writer.name}, this topic carries {reader.name}")
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            # Same schema: skip resolution. Otherwise fastavro resolves writer -> reader (defaults,
            # promotions, enum default), which is what keeps old messages readable.
            record = fastavro.schemaless_reader(body, writer.parsed, None if writer is reader else reader.parsed)
        except Exception as exc:  # hostile bytes make fastavro raise many undocumented types
            raise fail(f"corrupt body: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data):
            # Avro has no length or checksum; trailing bytes are the only sign of some corruptions.
            raise fail(f"{len(data) - body.tell()} unexpected bytes after the record")
        if not isinstance(record, dict):
            raise fail(f"expected a record, read {type(record).__name__}")
        return record
