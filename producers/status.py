"""Where an upload stands after the gateway: read from the pipeline's ClickHouse.

The sinks write every stage there; the gateway reads it through ``photostream.warehouse`` (a ClickHouse
server directly, or the sinks process that holds the embedded engine), so every gateway
instance answers the same, whichever backend runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from photostream.warehouse import Reader, jsonable
from schemas.events import ImageMetadata

_METADATA_FIELDS = tuple(ImageMetadata.__dataclass_fields__)
# The stages an image row dates, and the columns that do.
_IMAGE_STAGES = {"processing": "processing_started_at", "processed": "processed_at"}
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Progress:
    """What the pipeline did with an upload."""

    status: str
    metadata: dict[str, Any] | None = None
    variants: list[dict[str, Any]] = field(default_factory=list)
    duplicate_of: str | None = None
    error: dict[str, str] | None = None
    # When each stage past the gateway happened (``processing``, ``processed``, ``ready``, ``failed``), ISO 8601.
    timeline: dict[str, str] = field(default_factory=dict)


class StatusSource(Protocol):
    """Looks up an upload's progress."""

    async def progress(self, upload_id: str, photographer_id: str, received_at: datetime | None = None) -> Progress:
        """The upload's progress; ``queued`` when nothing past the gateway is known yet.

        ``received_at`` (when the gateway received it, as its event says) narrows the lookup to that day, and
        to that upload of the photo (the same photo sent again after a delete has the same id).
        """

    async def close(self) -> None:
        """Release connections."""


class ClickHouseStatus:
    """Progress from the sinks' tables (``images``, ``variants``, ``ready``, ``failures``)."""

    def __init__(self, reader: Reader, database: str) -> None:
        """Read through ``reader`` from ``database`` (an identifier ``ClickHouseSettings`` validated)."""
        self._reader = reader
        # Only the database name is spliced in; every value is a bound parameter.
        # One upload's rows are few: each query reads them all by primary key, without FINAL (which would merge
        # every day's partition) and without ORDER BY ... LIMIT BY (which costs more than the lookup itself), and
        # the newest version of each row is picked here, as FINAL would. Knowing the day the upload was received
        # (every row of it is in that day's partition) spares a look into every other day's parts.
        self._queries = {day_known: _lookups(database, day_known=day_known) for day_known in (False, True)}

    async def progress(self, upload_id: str, photographer_id: str, received_at: datetime | None = None) -> Progress:
        """Completed once the image is ready, failed once a stage gave up on it, else queued.

        ``received_at`` must be the upload's own (its event's): the rows are looked for on that UTC day only.

        Raises:
            WarehouseError: ClickHouse (or the sinks holding it) could not be asked.
        """
        parameters = {"photographer": photographer_id, "upload": upload_id}
        if received_at is not None:
            moment = received_at.astimezone(UTC)
            parameters["day"] = moment.date().isoformat()
            # This upload's rows, not those of an earlier one of the same photo deleted the same day: events keep
            # received_at to the millisecond, the ledger to the microsecond.
            parameters["from"] = _clickhouse_time(moment - _MILLISECOND)
            parameters["to"] = _clickhouse_time(moment + _MILLISECOND)
        queries = self._queries[received_at is not None]
        # The three reads a completed upload needs run at once, on the reader's sessions; they are point
        # lookups, so reading the image of an upload that turns out queued costs little.
        ready, image, variants = await asyncio.gather(
            self._reader.query(queries["ready"], parameters),
            self._reader.query(queries["image"], parameters),
            self._reader.query(queries["variants"], parameters),
        )
        if ready.rows and len(_newest_variants(variants.dicts())) < int(_newest(ready.dicts())["variant_count"]):
            # The three reads ran at once, so the variants may have been read just before the batch that
            # also wrote the ready row; the sink inserts that row last, so now that it is seen they are there.
            image, variants = await asyncio.gather(
                self._reader.query(queries["image"], parameters),
                self._reader.query(queries["variants"], parameters),
            )
        row = _newest(image.dicts())
        timeline = {stage: _utc_iso(row.pop(column)) for stage, column in _IMAGE_STAGES.items() if column in row}
        duplicate = row.pop("duplicate_of", None)
        processed = Progress(
            status="queued",
            metadata={name: jsonable(value) for name, value in row.items()} or None,
            duplicate_of=str(duplicate) if duplicate else None,
            timeline=timeline,
        )
        if ready.rows:
            timeline["ready"] = _utc_iso(_newest(ready.dicts())["ready_at"])
            return replace(processed, status="completed", variants=_newest_variants(variants.dicts()))
        failure = await self._reader.query(queries["failure"], parameters)
        if failure.rows:
            reason, detail, stage, failed_at = failure.rows[0]
            timeline["failed"] = _utc_iso(failed_at)
            return replace(processed, status="failed", error={"code": reason, "detail": detail, "stage": stage})
        return processed

    async def close(self) -> None:
        """Close the reader."""
        await self._reader.close()


def _lookups(db: str, *, day_known: bool) -> dict[str, str]:
    """The status's queries by name; with ``day_known``, each reads only the partition of ``{day:Date}``."""

    def on(day_column: str) -> str:
        key = "photographer_id = {photographer:String} AND upload_id = {upload:UUID}"
        if not day_known:
            return key
        received = "received_at BETWEEN {from:DateTime64(3, 'UTC')} AND {to:DateTime64(3, 'UTC')}"
        return f"{key} AND toDate({day_column}) = {{day:Date}} AND (received_at IS NULL OR {received})"

    return {
        "ready": f"SELECT version, variant_count, ready_at FROM {db}.ready WHERE {on('received_at')}",  # noqa: S608
        "image": (
            f"SELECT version, {', '.join(_METADATA_FIELDS)}, duplicate_of, "  # noqa: S608
            f"{', '.join(_IMAGE_STAGES.values())} FROM {db}.images WHERE {on('received_at')}"
        ),
        "variants": (
            "SELECT version, variant AS name, format, width, height, bytes, key "  # noqa: S608
            f"FROM {db}.variants WHERE {on('received_at')}"
        ),
        # A failure's partition is the day of ifNull(received_at, failed_at).
        "failure": (
            f"SELECT reason, detail, stage, failed_at FROM {db}.failures "  # noqa: S608
            f"WHERE {on('ifNull(received_at, failed_at)')} ORDER BY failed_at DESC, version DESC LIMIT 1"
        ),
    }


def _clickhouse_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _utc_iso(moment: datetime | str) -> str:
    """A ClickHouse time (naive or not, UTC either way; ISO text through the sinks' endpoint) with its offset."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _newest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row of the highest ``version`` (what FINAL keeps), without its version; empty when there is none."""
    if not rows:
        return {}
    newest = dict(max(rows, key=lambda row: row["version"]))
    del newest["version"]
    return newest


def _newest_variants(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest row of each (name, format), sorted by name and format, as JSON values."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["name"], row["format"])
        if key not in latest or row["version"] > latest[key]["version"]:
            latest[key] = row
    return [
        {name: jsonable(value) for name, value in row.items() if name != "version"} for _, row in sorted(latest.items())
    ]
