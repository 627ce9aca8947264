"""Everything the analytics benchmark takes from the project's sinks, readers, status and dashboard.

The schema and the read side are being reworked; when a module moves or a call is renamed, this is the only
file to fix. The benchmark uses the real pieces: the schema's migrations, the sink's row mapping and writer,
the readers the gateway and the dashboard use (with their read limits, except a longer time limit so a slow
query is measured, not cut off; ``--read-memory-gb`` lifts the memory one), the status lookup and the dashboard's
own queries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from photostream.config import ClickHouseSettings
from photostream.warehouse import EngineReader, WarehouseError
from producers.dashboard import Dashboard
from producers.status import ClickHouseStatus
from sinks.clickhouse_schema import ROLLUP_VIEWS, migrate, refresh_rollups
from sinks.rows import TABLE_COLUMNS, rows_for
from sinks.writer import ClickHouseWriter

__all__ = [
    "TABLE_COLUMNS",
    "QueryError",
    "Reader",
    "Writer",
    "dashboard_queries",
    "migrate_to",
    "open_reader",
    "open_writer",
    "read_settings",
    "refresh_daily_rollups",
    "rows_for",
    "settings_for",
    "status_lookup",
]

QueryError = WarehouseError
"""What a reader raises when ClickHouse refuses or fails a query."""

READ_SECONDS = 600.0
"""The read time limit here: the product's is seconds, and a query over it would have no figure."""


class Writer(Protocol):
    """The sink's writing session: inserts, and any function on its client (migrations, generation)."""

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        """Insert rows into a table of the pipeline's database."""

    async def run(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``function(client, *args, **kwargs)`` on the writer's session."""

    def close(self) -> None:
        """Close the session."""


class Reader(Protocol):
    """A read session as the status and the dashboard use it."""

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run read-only SQL; the answer has ``columns`` and ``rows``."""

    async def close(self) -> None:
        """Release the sessions."""


def migrate_to(client: Any, database: str, version: int | None = None) -> list[int]:
    """Apply the schema's migrations to ``database`` on a clickhouse-connect client, up to ``version`` (all: None)."""
    return migrate(client, database, **({} if version is None else {"up_to": version}))


def refresh_daily_rollups(client: Any, database: str) -> int:
    """Refresh the schema's daily rollups now, as their schedule does every 10 minutes; how many (0: none yet)."""
    present = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name IN {names:Array(String)}",
        parameters={"db": database, "names": list(ROLLUP_VIEWS)},
    ).result_rows[0][0]
    if present:
        refresh_rollups(client, database)
    return int(present)


def settings_for(path: Path, database: str, *, read_memory_bytes: int | None = None) -> ClickHouseSettings:
    """Settings for chDB on ``path`` (this process's own engine) and ``database``.

    ``read_memory_bytes`` lifts the product's memory limit per read, to time an older schema whose queries pass it.
    """
    memory = {} if read_memory_bytes is None else {"query_max_memory_bytes": read_memory_bytes}
    return ClickHouseSettings(dsn=f"chdb://{path}", database=database, query_max_seconds=READ_SECONDS, **memory)


def open_writer(settings: ClickHouseSettings) -> Writer:
    """The sink's writer on its own session."""
    return ClickHouseWriter(settings)


def open_reader(settings: ClickHouseSettings) -> Reader:
    """Read sessions of their own, opened with the product's read settings."""
    return EngineReader(settings)


def read_settings(settings: ClickHouseSettings) -> dict[str, Any]:
    """The read limits the readers run with, for the report."""
    return {
        "max_threads": settings.query_max_threads,
        "sessions": settings.query_sessions,
        "max_memory_bytes": settings.query_max_memory_bytes,
        "max_seconds": settings.query_max_seconds,
    }


def status_lookup(reader: Reader, database: str) -> Callable[[str, str, datetime], Awaitable[str]]:
    """``lookup(upload_id, photographer_id, received_at)``: the queries the gateway's status runs; the status."""
    status = ClickHouseStatus(reader, database)  # type: ignore[arg-type]

    async def lookup(upload_id: str, photographer_id: str, received_at: datetime) -> str:
        return (await status.progress(upload_id, photographer_id, received_at)).status

    return lookup


def dashboard_queries(reader: Reader, database: str) -> dict[str, str]:
    """The SQL the dashboard sends, by chart; each takes the parameter ``minutes``."""
    return dict(Dashboard(reader, database).queries)  # type: ignore[arg-type]
