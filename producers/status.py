"""Where an upload stands after the gateway: read from the pipeline's ClickHouse.

The sinks write every stage there; the gateway reads it through ``photostream.warehouse`` (a ClickHouse
server directly, or the sinks process that holds the embedded engine), so every gateway
instance answers the same, whichever backend runs.
"""

from __future__ import annotations

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
        # One upload's rows are few, so each query takes the newest version itself (what FINAL would keep)
        # instead of paying FINAL over every day's partition: a lookup by primary key, in milliseconds.
        db, where = database, "photographer_id = {photographer:String} AND upload_id = {upload:UUID}"
        self._ready = f"SELECT 1 FROM {db}.ready WHERE {where} LIMIT 1"  # noqa: S608
        self._image = (
            f"SELECT {', '.join(_METADATA_FIELDS)}, duplicate_of FROM {db}.images WHERE {where} "  # noqa: S608
            "ORDER BY version DESC LIMIT 1"
        )
        self._variants = (
            "SELECT name, format, width, height, bytes, key FROM ("  # noqa: S608
            f"SELECT variant AS name, format, width, height, bytes, key FROM {db}.variants WHERE {where} "
            "ORDER BY version DESC LIMIT 1 BY name, format) ORDER BY name, format"
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
        ready = await self._reader.query(self._ready, parameters)
        if ready.rows:
            image = await self._reader.query(self._image, parameters)
            variants = await self._reader.query(self._variants, parameters)
            row = image.dicts()[0] if image.rows else {}
            duplicate_of = row.pop("duplicate_of", None)
            return Progress(
                status="completed",
                metadata={name: jsonable(value) for name, value in row.items()} or None,
                variants=[{name: jsonable(value) for name, value in v.items()} for v in variants.dicts()],
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
