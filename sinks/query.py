"""Read-only queries from any process, whichever ClickHouse runs.

With a ClickHouse server every process connects to it. The embedded chDB engine allows one
process per data path, so the sinks process owns it and answers the others' read-only queries
over HTTP (``POST /v1/query`` on ``CLICKHOUSE_QUERY_URL``, loopback by default). Callers use
``reader_for(settings)`` and never branch on the backend.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import ipaddress
import math
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from photostream.config import ClickHouseSettings
from sinks.analytics import Analytics, AnalyticsError, QueryResult, ReadOnlyViolation

QUERY_PATH = "/v1/query"


class QueryUnavailable(AnalyticsError):
    """Nobody answers queries: the sinks process (which owns the embedded engine) is not running."""


class AnalyticsReader(Protocol):
    """Runs read-only SQL against the pipeline's ClickHouse."""

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run ``sql`` (ClickHouse ``{name:Type}`` placeholders filled from ``parameters``)."""

    async def close(self) -> None:
        """Release connections."""


class LocalReader:
    """Queries through an ``Analytics`` this process holds."""

    def __init__(self, analytics: Analytics, *, owned: bool = True) -> None:
        """Wrap ``analytics``; with ``owned`` closing the reader closes it too."""
        self._analytics = analytics
        self._owned = owned

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run the query on the held client."""
        return await self._analytics.query(sql, parameters)

    async def close(self) -> None:
        """Close the client if this reader owns it."""
        if self._owned:
            self._analytics.close()


class RemoteReader:
    """Queries through the sinks process's query endpoint (embedded mode)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        """Send queries to ``url`` (the sinks' ``CLICKHOUSE_QUERY_URL``)."""
        self._url = url.rstrip("/") + QUERY_PATH
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """POST the query; the answer's values come back as JSON (ids and times as strings)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"sql": sql, "parameters": {key: jsonable(value) for key, value in (parameters or {}).items()}}
        try:
            async with self._session.post(self._url, json=body) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise QueryUnavailable(f"no answer from {self._url}: is `photostream sinks` running?") from error
        if response.status == 200:
            return QueryResult(tuple(answer["columns"]), tuple(answer["types"]), tuple(map(tuple, answer["rows"])))
        kind = ReadOnlyViolation if answer.get("type") == "/problems/read-only" else AnalyticsError
        raise kind(answer.get("detail", f"query failed with HTTP {response.status}"))

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


def reader_for(settings: ClickHouseSettings) -> AnalyticsReader:
    """A server's reader when the DSN names one; else the sinks' endpoint for the embedded engine."""
    if settings.embedded:
        return RemoteReader(settings.query_url)
    return LocalReader(Analytics(settings))


def query_routes(analytics: Analytics) -> list[web.RouteDef]:
    """The endpoint the sinks process serves for other processes' read-only queries."""

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            sql, parameters = body["sql"], body.get("parameters") or {}
        except (ValueError, KeyError, TypeError):
            return _problem(400, "bad-request", 'expected JSON {"sql": "...", "parameters": {...}}')
        try:
            result = await analytics.query(sql, parameters)
        except ReadOnlyViolation as error:
            return _problem(403, "read-only", str(error))
        except AnalyticsError as error:
            return _problem(400, "query-failed", str(error))
        rows = [[jsonable(value) for value in row] for row in result.rows]
        return web.json_response({"columns": result.columns, "types": result.types, "rows": rows})

    return [web.post(QUERY_PATH, handle)]


def _problem(status: int, code: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": f"/problems/{code}", "title": code.replace("-", " "), "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


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
