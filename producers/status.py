"""Where an upload stands after the gateway: read from the pipeline's ClickHouse.

The sinks write every stage there; the gateway reads it through ``photostream.warehouse`` (a ClickHouse
server directly, or the sinks process that holds the embedded engine), so every gateway
instance answers the same, whichever backend runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from photostream.warehouse import Reader, jsonable
from schemas.events import ImageMetadata

_METADATA_FIELDS = tuple(ImageMetadata.__dataclass_fields__)


@dataclass(frozen=True)
class Progress:
    """What the pipeline did with an upload."""

    status: str
    metadata: dict[str, Any] | None = None
    variants: list[dict[str, Any]] = field(default_factory=list)
    duplicate_of: str | None = None
    error: dict[str, str] | None = None


class StatusSource(Protocol):
    """Looks up an upload's progress."""

    async def progress(self, upload_id: str, photographer_id: str) -> Progress:
        """The upload's progress; ``queued`` when nothing past the gateway is known yet."""

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
        # the newest version of each row is picked here, as FINAL would.
        db, where = database, "photographer_id = {photographer:String} AND upload_id = {upload:UUID}"
        self._ready = f"SELECT 1 FROM {db}.ready WHERE {where} LIMIT 1"  # noqa: S608
        self._image = f"SELECT version, {', '.join(_METADATA_FIELDS)}, duplicate_of FROM {db}.images WHERE {where}"  # noqa: S608
        self._variants = (
            "SELECT version, variant AS name, format, width, height, bytes, key "  # noqa: S608
            f"FROM {db}.variants WHERE {where}"
        )
        self._failure = (
            f"SELECT reason, detail, stage FROM {db}.failures WHERE {where} "  # noqa: S608
            "ORDER BY failed_at DESC, version DESC LIMIT 1"
        )

    async def progress(self, upload_id: str, photographer_id: str) -> Progress:
        """Completed once the image is ready, failed once a stage gave up on it, else queued.

        Raises:
            WarehouseError: ClickHouse (or the sinks holding it) could not be asked.
        """
        parameters = {"photographer": photographer_id, "upload": upload_id}
        # The three reads a completed upload needs run at once, on the reader's sessions; they are point
        # lookups, so reading the image of an upload that turns out queued costs little.
        ready, image, variants = await asyncio.gather(
            self._reader.query(self._ready, parameters),
            self._reader.query(self._image, parameters),
            self._reader.query(self._variants, parameters),
        )
        if ready.rows:
            row = _newest(image.dicts())
            duplicate_of = row.pop("duplicate_of", None)
            return Progress(
                status="completed",
                metadata={name: jsonable(value) for name, value in row.items()} or None,
                variants=_newest_variants(variants.dicts()),
                duplicate_of=str(duplicate_of) if duplicate_of else None,
            )
        failure = await self._reader.query(self._failure, parameters)
        if failure.rows:
            reason, detail, stage = failure.rows[0]
            return Progress(status="failed", error={"code": reason, "detail": detail, "stage": stage})
        return Progress(status="queued")

    async def close(self) -> None:
        """Close the reader."""
        await self._reader.close()


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
        {name: jsonable(value) for name, value in row.items() if name != "version"}
        for _, row in sorted(latest.items())
    ]
