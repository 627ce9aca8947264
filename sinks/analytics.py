"""The pipeline's ClickHouse, as the sinks process holds it: inserts and read-only queries.

One clickhouse-connect client (chDB in process, or a server) used from one thread, so the
sink's inserts and the queries it answers for other processes never race on it.

    AnalyticsError            ClickHouse refused or failed a statement
      └── ReadOnlyViolation   a query tried to write (refused by ClickHouse's readonly mode)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from photostream.clients import clickhouse_client
from photostream.config import ClickHouseSettings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# ClickHouse's error code for a write attempted in readonly mode.
_READONLY = "Code: 164"


class AnalyticsError(Exception):
    """ClickHouse refused or failed a statement."""


class ReadOnlyViolation(AnalyticsError):
    """A read-only query tried to change something."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a query with their column names and ClickHouse types."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Analytics:
    """Owns the ClickHouse client; every call runs on its one thread."""

    def __init__(self, settings: ClickHouseSettings, client: Client | None = None) -> None:
        """Open the client (for chDB this takes the data path for this process)."""
        self.database = settings.database
        self._client = client or clickhouse_client(settings)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="clickhouse")

    async def run(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``function(client, *args, **kwargs)`` on the client's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: function(self._client, *args, **kwargs))

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        """Insert rows into ``table`` of the pipeline's database."""
        if not rows:
            return
        target = f"{self.database}.{table}"
        try:
            await self.run(lambda client: client.insert(target, list(rows), column_names=list(columns)))
        except ClickHouseError as error:
            raise AnalyticsError(f"insert into {target} failed: {error}") from error

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a read-only query; writes are refused by ClickHouse itself (``readonly=1``).

        Raises:
            ReadOnlyViolation: The statement would change something.
            AnalyticsError: Any other error (syntax, unknown table...).
        """

        def execute(client: Client) -> QueryResult:
            answer = client.query(sql, parameters=dict(parameters or {}), settings={"readonly": 1})
            return QueryResult(
                columns=tuple(answer.column_names),
                types=tuple(column_type.name for column_type in answer.column_types),
                rows=tuple(tuple(row) for row in answer.result_rows),
            )

        try:
            return await self.run(execute)
        except ClickHouseError as error:
            message = str(error)
            if _READONLY in message:
                raise ReadOnlyViolation("only reading queries are allowed") from error
            raise AnalyticsError(message.strip().splitlines()[0] if message.strip() else repr(error)) from error

    def close(self) -> None:
        """Close the client (releasing the chDB path) and its thread."""
        self._thread.submit(self._client.close).result()
        self._thread.shutdown()
