"""The ClickHouse sink: uploads, processed images, ready images, failures and deletions into tables.

Consumes ``photo-uploads``, ``photo-processed``, ``photo-ready``, ``photo-failed`` and ``photo-deleted``, turns each
event into rows (``sinks.rows``), and inserts a batch per table when it is full or old; the loop
commits the offsets only after every insert succeeded. Replays insert the same rows again: the
tables are ReplacingMergeTree and every view reads them with FINAL, so analysts see each
image once (``sinks.clickhouse_schema``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from schemas.errors import SerdeError
from schemas.serde import EventSerde
from schemas.topics import PHOTO_DELETED, PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_READY, PHOTO_UPLOADS, Partition
from sinks.consumer import Received
from sinks.rows import INSERT_ORDER, TABLE_COLUMNS, rows_for
from sinks.writer import ClickHouseWriter

log = logging.getLogger(__name__)

TOPICS = [PHOTO_UPLOADS, PHOTO_PROCESSED, PHOTO_READY, PHOTO_FAILED, PHOTO_DELETED]


class ClickHouseSink:
    """Batches rows per table and inserts them."""

    name = "clickhouse-sink"

    def __init__(self, writer: ClickHouseWriter, serde: EventSerde) -> None:
        """Create the sink over an open writer (schema already migrated)."""
        self._writer = writer
        self._serde = serde
        self._rows: dict[Partition, dict[str, list[list[Any]]]] = defaultdict(lambda: defaultdict(list))
        self._next: dict[Partition, int] = {}
        self._counts: dict[Partition, int] = defaultdict(int)

    def pending(self) -> int:
        """Events in the current batch."""
        return sum(self._counts.values())

    async def add(self, message: Received) -> None:
        """Turn one event into rows; an undecodable one is logged and skipped."""
        partition = message.source
        self._next[partition] = message.offset + 1
        self._counts[partition] += 1
        try:
            event = self._serde.decode(message.value, message.topic, message.partition, message.offset)
            rows = rows_for(event)
        except (SerdeError, TypeError) as error:
            log.error("skipping an event ClickHouse cannot take: %s", error)
            return
        for table, table_rows in rows.items():
            self._rows[partition][table].extend(table_rows)

    async def flush(self) -> dict[Partition, int]:
        """Insert one batch per table, then hand back the offsets now safe to commit."""
        by_table: dict[str, list[list[Any]]] = defaultdict(list)
        for tables in self._rows.values():
            for table, rows in tables.items():
                by_table[table].extend(rows)
        # A failure leaves the batch as it was: the loop retries the whole flush, and rows
        # inserted by a partial attempt collapse with their repeats.
        for table in INSERT_ORDER:
            if by_table.get(table):
                await self._writer.insert(table, by_table[table], TABLE_COLUMNS[table])
        offsets = dict(self._next)
        self._rows.clear()
        self._next.clear()
        self._counts.clear()
        return offsets

    def drop(self, partitions: Iterable[Partition]) -> None:
        """Forget rows of partitions no longer ours."""
        for partition in partitions:
            self._rows.pop(partition, None)
            self._next.pop(partition, None)
            self._counts.pop(partition, None)
