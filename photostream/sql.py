"""`photostream sql`: one read-only query against the pipeline's ClickHouse, printed for people or tools."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from terminaltables import AsciiTable

from photostream.config import ClickHouseSettings
from photostream.warehouse import EngineReader, QueryResult, QueryUnavailable, WarehouseError, jsonable, reader_for

FORMATS = ("table", "csv", "json")


async def run_query(settings: ClickHouseSettings, sql: str) -> QueryResult:
    """Run ``sql`` read-only, through the sinks when they hold the embedded engine.

    When nobody answers for the embedded engine (the pipeline is stopped), the engine is opened
    here directly, so queries work on a stopped pipeline too.

    Bare table names resolve in the pipeline's database (``photostream`` by default).

    Raises:
        ReadOnlyViolation: The statement would write.
        QueryLimitExceeded: It ran past a read limit (time, rows, bytes, memory).
        WarehouseError: The query failed, or the engine is held by a process that does not answer.
    """
    reader = reader_for(settings)
    try:
        return await reader.query(sql)
    except QueryUnavailable:
        if not settings.embedded:
            raise
    finally:
        await reader.close()
    engine = EngineReader(settings)
    try:
        return await engine.query(sql)
    except WarehouseError:
        raise
    except Exception as error:  # chDB refuses a path another process holds
        raise WarehouseError(f"the embedded ClickHouse is busy and its owner does not answer: {error}") from error
    finally:
        await engine.close()


def render(result: QueryResult, fmt: str) -> str:
    """The result as an aligned table, CSV with a header, or a JSON array of objects."""
    if fmt == "json":
        rows = [
            {column: jsonable(value) for column, value in zip(result.columns, row, strict=True)} for row in result.rows
        ]
        return json.dumps(rows, ensure_ascii=False, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_cell(value) for value in row] for row in result.rows)
        return out.getvalue().rstrip("\n")
    table = AsciiTable([list(result.columns), *([_cell(value) for value in row] for row in result.rows)])
    return f"{table.table}\n{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"


def _cell(value: Any) -> str:
    value = jsonable(value)
    if value is None:
        return "NULL"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
