"""The pipeline's ClickHouse as its readers see it: status, dashboard, demo, `photostream sql`.

Reads never share a session with the writer. With a ClickHouse server every process connects to
it. The embedded chDB engine allows one process per data path, so the sinks process owns it and
answers the others' queries over HTTP (``POST /v1/query`` on ``CLICKHOUSE_QUERY_URL``, loopback,
behind a shared token); either way a query ends up on an ``EngineReader``: a few sessions of
their own, each opened with ``readonly=1`` and the read limits (time, rows, bytes, memory,
threads) as session settings, so a query can neither write nor lift its limits. A session whose
query failed is closed and replaced, never reused: on chDB a query that fails mid-stream leaves
the rest of its answer in the session, and a refused write used to leave a shared session
read-only for the writer too. Callers use ``reader_for(settings)`` and never branch on the
backend.

    WarehouseError            ClickHouse refused or failed a query
      ├── ReadOnlyViolation   the query tried to write
      ├── QueryLimitExceeded  the query ran past a read limit (time, rows, bytes, memory)
      └── QueryUnavailable    nobody answers (the sinks process holding the engine is not running)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import decimal
import ipaddress
import math
import os
import queue
import secrets
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from clickhouse_connect.driver.exceptions import ClickHouseError

from photostream.clients import clickhouse_client
from photostream.config import ClickHouseSettings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

QUERY_PATH = "/v1/query"

# ClickHouse error codes that say what went wrong with a read.
_READONLY = "Code: 164"
_LIMITS = ("Code: 159", "Code: 396", "Code: 241", "Code: 307", "Code: 158")


class WarehouseError(Exception):
    """ClickHouse refused or failed a query."""


class ReadOnlyViolation(WarehouseError):
    """A read-only query tried to change something."""


class QueryLimitExceeded(WarehouseError):
    """A query ran past a read limit (time, result rows or bytes, memory)."""


class QueryUnavailable(WarehouseError):
    """Nobody answers queries: the sinks process (which owns the embedded engine) is not running."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of a query with their column names and ClickHouse types."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Reader(Protocol):
    """Runs read-only SQL against the pipeline's ClickHouse."""

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run ``sql`` (ClickHouse ``{name:Type}`` placeholders filled from ``parameters``)."""

    async def close(self) -> None:
        """Release connections."""


def read_session_settings(settings: ClickHouseSettings) -> dict[str, Any]:
    """The settings every read session is opened with; ``readonly`` last, so nothing after it can lift a limit."""
    return {
        "max_execution_time": settings.query_max_seconds,
        "timeout_overflow_mode": "throw",
        "max_result_rows": settings.query_max_result_rows,
        "max_result_bytes": settings.query_max_result_bytes,
        "result_overflow_mode": "throw",
        "max_memory_usage": settings.query_max_memory_bytes,
        "max_threads": settings.query_max_threads,
        # Exact for the pipeline's tables (no row's versions span two partitions; see sinks.clickhouse_schema),
        # and it lets FINAL read a merged day as it is instead of merging every day's parts together.
        "do_not_merge_across_partitions_select_final": 1,
        "readonly": 1,
    }


class EngineReader:
    """Read sessions of this process's own, on threads of their own (never the writer's).

    Each query borrows one of ``settings.query_sessions`` sessions, so that many queries run at
    once and the rest wait; a session whose query failed is closed and a fresh one opened.
    """

    def __init__(self, settings: ClickHouseSettings) -> None:
        """Prepare the sessions; they are opened on first use (chDB: on this process's data path)."""
        self._settings = settings
        self._session_settings = read_session_settings(settings)
        self._sessions: queue.SimpleQueue[Client | None] = queue.SimpleQueue()
        for _ in range(settings.query_sessions):
            self._sessions.put(None)
        self._threads = ThreadPoolExecutor(settings.query_sessions, thread_name_prefix="clickhouse-read")
        self._closed = False

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a read-only query within the read limits.

        Raises:
            ReadOnlyViolation: The statement would change something.
            QueryLimitExceeded: It ran past a limit (time, rows, bytes, memory).
            WarehouseError: Any other error (syntax, unknown table...).
        """
        if self._closed:
            raise QueryUnavailable("the reader is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run, sql, dict(parameters or {}))

    def _run(self, sql: str, parameters: dict[str, Any]) -> QueryResult:
        client = self._sessions.get()
        try:
            if client is None:
                client = self._open()
            answer = client.query(sql, parameters=parameters)
            result = QueryResult(
                columns=tuple(answer.column_names),
                types=tuple(column_type.name for column_type in answer.column_types),
                rows=tuple(tuple(row) for row in answer.result_rows),
            )
        except Exception as error:
            # Whatever failed, the session's state is not trusted again (see the module docstring).
            if client is not None:
                _close_quietly(client)
            client = None
            if isinstance(error, ClickHouseError):
                raise _translate(error) from error
            raise
        finally:
            self._sessions.put(client)
        return result

    def _open(self) -> Client:
        # Bare table names resolve in the pipeline's database, once the sinks have created it.
        try:
            return clickhouse_client(
                self._settings, database=self._settings.database, session_settings=self._session_settings
            )
        except ClickHouseError as error:
            if "UNKNOWN_DATABASE" not in str(error):
                raise
        return clickhouse_client(self._settings, session_settings=self._session_settings)

    async def close(self) -> None:
        """Close every session (for chDB, releasing this process's hold on the path once the writer closes too)."""
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._close_sessions)

    def _close_sessions(self) -> None:
        self._threads.shutdown(wait=True)
        while not self._sessions.empty():
            client = self._sessions.get()
            if client is not None:
                _close_quietly(client)


def _close_quietly(client: Client) -> None:
    # Closing a broken session must not hide the error that broke it.
    with contextlib.suppress(Exception):
        client.close()


def _translate(error: ClickHouseError) -> WarehouseError:
    message = str(error)
    if _READONLY in message:
        return ReadOnlyViolation("only reading queries are allowed")
    first = next((line for line in message.strip().splitlines() if line.strip()), repr(error))
    if any(code in message for code in _LIMITS):
        return QueryLimitExceeded(f"the query ran past a read limit: {first}")
    return WarehouseError(first)


class RemoteReader:
    """Queries through the sinks process's query endpoint (embedded engine)."""

    def __init__(self, url: str, token: str | Callable[[], str], *, timeout: float = 60.0) -> None:
        """Send queries to ``url`` (the sinks' ``CLICKHOUSE_QUERY_URL``), proving ``token``.

        ``token`` may be a function that reads it: it is asked again when the endpoint refuses the
        one held, as when this process started before the sinks wrote their token file.
        """
        self._url = url.rstrip("/") + QUERY_PATH
        self._read_token = token if callable(token) else (lambda: token)
        self._token = self._read_token()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """POST the query; the answer's values come back as JSON (ids and times as strings)."""
        body = {"sql": sql, "parameters": {key: jsonable(value) for key, value in (parameters or {}).items()}}
        sent = self._token
        status, answer = await self._post(body, sent)
        # Refused: read the token again and retry with it, unless it is the one just refused. Queries sent at
        # once are all refused together; whichever reads the new token first keeps it for the others.
        if status == 401 and (token := self._read_token()) != sent:
            self._token = token
            status, answer = await self._post(body, token)
        if status == 200:
            return QueryResult(tuple(answer["columns"]), tuple(answer["types"]), tuple(map(tuple, answer["rows"])))
        kind = _PROBLEMS.get(str(answer.get("type", "")), WarehouseError)
        raise kind(answer.get("detail", f"query failed with HTTP {status}"))

    async def _post(self, body: dict[str, Any], token: str) -> tuple[int, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self._session.post(self._url, json=body, headers=headers) as response:
                return response.status, await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise QueryUnavailable(f"no answer from {self._url}: is `photostream sinks` running?") from error

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


# The endpoint's problem types, and the errors they stand for.
PROBLEM_TYPES: dict[type[WarehouseError], tuple[int, str]] = {
    ReadOnlyViolation: (403, "read-only"),
    QueryLimitExceeded: (422, "query-limit"),
    QueryUnavailable: (503, "unavailable"),
    WarehouseError: (400, "query-failed"),
}
_PROBLEMS: dict[str, type[WarehouseError]] = {f"/problems/{code}": kind for kind, (_, code) in PROBLEM_TYPES.items()}


def reader_for(settings: ClickHouseSettings) -> Reader:
    """The sinks' endpoint for the embedded engine; sessions of this process's own on a server."""
    if settings.embedded:
        return RemoteReader(settings.query_url, lambda: query_token(settings))
    return EngineReader(settings)


def query_token(settings: ClickHouseSettings) -> str:
    """The query endpoint's token: ``CLICKHOUSE_QUERY_TOKEN``, else the sinks' token file (empty if none yet)."""
    if settings.query_token is not None:
        return settings.query_token.get_secret_value()
    try:
        return settings.token_file.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def ensure_query_token(settings: ClickHouseSettings) -> str:
    """The token the endpoint requires; for the token file, written once with mode 0600."""
    token = query_token(settings)
    if token:
        return token
    path = settings.token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: two sinks starting at once agree on the first one's token.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return query_token(settings)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(token)
    return token


def jsonable(value: Any) -> Any:
    """``value`` as JSON can carry it: ids, times and decimals as strings, bytes as base64, NaN as null."""
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # quantiles of nothing are NaN, which JSON cannot carry
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value
