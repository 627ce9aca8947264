"""The ClickHouse sink's writer: the one session that inserts rows and migrates the schema.

It runs every call on one thread of its own, and nothing but the sinks' writes goes through it:
reads (the status, the dashboard, analysts' SQL) use read sessions of their own
(``photostream.warehouse.EngineReader``), so no query can change this session's state or hold
up an insert behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from clickhouse_connect.driver.exceptions import ClickHouseError

from photostream.clients import clickhouse_client
from photostream.config import ClickHouseSettings
from photostream.warehouse import WarehouseError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

T = TypeVar("T")


class ClickHouseWriter:
    """Owns the writing session; every call runs on its one thread."""

    def __init__(self, settings: ClickHouseSettings, client: Client | None = None) -> None:
        """Open the session (for chDB this takes the data path for this process)."""
        self.database = settings.database
        self._client = client or clickhouse_client(settings)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="clickhouse-write")

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``function(client, *args, **kwargs)`` on the writer's thread (migrations, maintenance)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: function(self._client, *args, **kwargs))

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        """Insert rows into ``table`` of the pipeline's database.

        Raises:
            WarehouseError: ClickHouse refused the insert (the caller keeps the batch and retries).
        """
        if not rows:
            return
        target = f"{self.database}.{table}"
        try:
            await self.run(lambda client: client.insert(target, list(rows), column_names=list(columns)))
        except ClickHouseError as error:
            raise WarehouseError(f"insert into {target} failed: {error}") from error

    def close(self) -> None:
        """Close the session (releasing the chDB path once no reader holds it) and its thread."""
        self._thread.submit(self._client.close).result()
        self._thread.shutdown()
