"""The endpoint through which other processes read the embedded engine the sinks process holds.

chDB allows one process per data path, so the gateway's status, the dashboard and
`photostream sql` send their queries here (``POST /v1/query`` on ``CLICKHOUSE_QUERY_URL``).
It listens on loopback only and requires the shared token (``Authorization: Bearer``), so not
every local process may read every photographer's data. Queries run on the process's
``EngineReader`` (read sessions with limits, never the writer's).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from photostream.http import bearer_token, problem_response
from photostream.warehouse import PROBLEM_TYPES, QUERY_PATH, EngineReader, WarehouseError, jsonable


def query_routes(reader: EngineReader, token: str) -> list[web.RouteDef]:
    """The endpoint's routes, answering only callers that prove ``token``."""

    async def handle(request: web.Request) -> web.Response:
        given = bearer_token(request) or ""
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return _problem(401, "unauthorized", "a valid Bearer token is required")
        try:
            body = await request.json()
            sql, parameters = body["sql"], body.get("parameters") or {}
            if not isinstance(sql, str) or not isinstance(parameters, dict):
                raise TypeError("sql must be a string and parameters an object")
        except (ValueError, KeyError, TypeError):
            return _problem(400, "bad-request", 'expected JSON {"sql": "...", "parameters": {...}}')
        try:
            result = await reader.query(sql, parameters)
        except WarehouseError as error:
            status, code = next(PROBLEM_TYPES[kind] for kind in type(error).__mro__ if kind in PROBLEM_TYPES)
            return _problem(status, code, str(error))
        rows = [[jsonable(value) for value in row] for row in result.rows]
        return web.json_response({"columns": result.columns, "types": result.types, "rows": rows})

    return [web.post(QUERY_PATH, handle)]


def _problem(status: int, code: str, detail: str) -> web.Response:
    return problem_response(code, status, code.replace("-", " "), detail)
