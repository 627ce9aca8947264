"""A downstream service's subscriber to photo-ready, with confluent-kafka and fastavro only.

It imports nothing of photostream: the .avsc files are the whole contract. The behaviour
(environment, output, deduplication, commits) is described in ../README.md.

    pip install confluent-kafka fastavro
    GROUP_ID=thumbnail-cdn python subscriber.py
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import fastavro
from confluent_kafka import Consumer, Message
from fastavro.schema import fingerprint, to_parsing_canonical_form

TOPIC = "photo-ready"
MAGIC = b"\xc3\x01"  # Avro single-object encoding: magic, then the writer's 8-byte fingerprint
HEADER = len(MAGIC) + 8
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def schemas_dir() -> Path:
    """SCHEMAS_DIR, or the schemas/ folder of the repository this file is in."""
    if "SCHEMAS_DIR" in os.environ:
        return Path(os.environ["SCHEMAS_DIR"])
    for folder in Path(__file__).resolve().parents:
        if (folder / "schemas" / "ImageReady.avsc").is_file():
            return folder / "schemas"
    sys.exit("no schemas/ImageReady.avsc above this file: set SCHEMAS_DIR")


def load(path: Path) -> tuple[bytes, dict]:
    """A schema and its CRC-64-AVRO fingerprint, as the 8 little-endian bytes of the header."""
    schema = fastavro.parse_schema(json.loads(path.read_text()), {})  # each file its own named types
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")), schema


def decode(value: bytes, reader: dict, writers: dict[bytes, dict]) -> dict:
    """One single-object encoded value, read with its writer schema into the reader schema."""
    if value[:2] != MAGIC:
        raise ValueError(f"bad magic {value[:2].hex()}, expected c301")
    writer = writers.get(value[2:HEADER])
    if writer is None:
        raise ValueError(f"unknown writer schema fingerprint {value[2:HEADER].hex()}")
    body = io.BytesIO(value[HEADER:])
    # Reading with the writer schema and resolving into ours is what keeps older events readable.
    event = fastavro.schemaless_reader(body, writer, reader)
    if body.tell() != len(value) - HEADER:
        raise ValueError("unexpected bytes after the event")
    return event


def main() -> None:
    """Consume photo-ready until stopped (or idle, with EXIT_WHEN_IDLE_SECONDS)."""
    directory = schemas_dir()
    reader_fp, reader = load(directory / "ImageReady.avsc")
    writers = dict(load(path) for path in sorted((directory / "history").glob("ImageReady.v*.avsc")))
    writers[reader_fp] = reader
    seen_file = Path(os.environ.get("SEEN_FILE", "seen-event-ids.txt"))
    seen = set(seen_file.read_text().split()) if seen_file.exists() else set()
    idle_exit = float(os.environ["EXIT_WHEN_IDLE_SECONDS"]) if os.environ.get("EXIT_WHEN_IDLE_SECONDS") else None

    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "group.id": os.environ.get("GROUP_ID", "example-subscriber"),
            "auto.offset.reset": "earliest",  # a new group starts at the oldest retained event
            # At least once: an offset is stored only once its event is handled, and only stored
            # offsets are committed (every few seconds, and on close).
            "enable.auto.offset.store": False,
        }
    )
    assigned = []
    consumer.subscribe([TOPIC], on_assign=lambda _consumer, partitions: assigned.append(time.monotonic()))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    last_message = None
    with seen_file.open("a") as seen_log:
        while not stopping:
            message: Message | None = consumer.poll(0.5)
            if message is None:
                # Idle time counts from when the group gave this consumer its partitions.
                since = last_message or (assigned[-1] if assigned else None)
                if idle_exit is not None and since is not None and time.monotonic() - since >= idle_exit:
                    break
                continue
            if message.error():
                print(f"kafka: {message.error()}", file=sys.stderr)
                continue
            last_message = time.monotonic()
            handle(message, reader, writers, seen, seen_log)
            consumer.store_offsets(message)
    consumer.close()  # commits the stored offsets and leaves the group, so its partitions move at once


def handle(message: Message, reader: dict, writers: dict[bytes, dict], seen: set[str], seen_log: TextIO) -> None:
    """Decode, print, and remember the event id; a duplicate is printed as one and changes nothing."""
    where = f"partition {message.partition()} offset {message.offset()}"
    try:
        event = decode(message.value() or b"", reader, writers)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on bad bytes; skip, never die
        print(f"{where}: cannot decode: {exc}", file=sys.stderr)
        return
    duplicate = event["event_id"] in seen
    line = {
        "partition": message.partition(),
        "offset": message.offset(),
        "event_id": event["event_id"],
        "upload_id": str(event["upload_id"]),
        "photographer_id": event["photographer_id"],
        "variant_keys": sorted(variant["key"] for variant in event["variants"]),
        "ready_at": (event["ready_at"] - EPOCH) // timedelta(milliseconds=1),
        "duplicate": duplicate,
    }
    print(json.dumps(line), flush=True)  # the service's real work goes here, before the commit
    if not duplicate:
        seen.add(event["event_id"])
        seen_log.write(event["event_id"] + "\n")
        seen_log.flush()


if __name__ == "__main__":
    main()
