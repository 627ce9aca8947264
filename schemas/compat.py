"""Backward-compatibility check: can the new schema read what the old one wrote?

Topics keep old messages, so a new reader schema must resolve every old writer schema (Avro schema
resolution). The check is done by fastavro itself: sample records covering every union branch and
enum symbol are written with the old schema and read with the new one. ``schemas.history`` runs it
for each current ``.avsc`` against every published version in ``history/``.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

_PRIMITIVE_SAMPLES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 1_700_000_000_000,
    "float": 1.5,
    "double": 2.5,
    "bytes": b"\x00\xff",
    "string": "sample",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_PROBLEM = 300


def _choices(schema: Any, named: dict[str, Any], seen: set[str]) -> int:
    """Largest number of alternatives (union branches, enum symbols) anywhere in the schema."""
    if isinstance(schema, list):
        return max([len(schema), *(_choices(s, named, seen) for s in schema)])
    if isinstance(schema, str):
        if schema in named and schema not in seen:
            return _choices(named[schema], named, seen | {schema})
        return 1
    kind = schema["type"]
    if kind == "enum":
        return len(schema["symbols"])
    if kind == "record":
        name = schema.get("name", "")
        return max([1, *(_choices(f["type"], named, seen | {name}) for f in schema["fields"])])
    if kind == "array":
        return _choices(schema["items"], named, seen)
    if kind == "map":
        return _choices(schema["values"], named, seen)
    return 1


def _sample(schema: Any, variant: int, named: dict[str, Any], depth: int = 0) -> Any:
    """A value of ``schema``; ``variant`` picks union branches, enum symbols and array lengths."""
    if depth > 20:
        raise ValueError("schema nests too deeply to sample (recursive type?)")
    if isinstance(schema, list):
        return _sample(schema[variant % len(schema)], variant, named, depth + 1)
    if isinstance(schema, str):
        if schema in _PRIMITIVE_SAMPLES:
            return _PRIMITIVE_SAMPLES[schema]
        return _sample(named[schema], variant, named, depth + 1)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "uuid":
        return str(uuid.UUID(int=variant + 1))
    if logical in ("timestamp-millis", "timestamp-micros"):
        return _EPOCH + timedelta(days=20_000, milliseconds=variant)
    if kind == "record":
        return {f["name"]: _sample(f["type"], variant, named, depth + 1) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][variant % len(schema["symbols"])]
    if kind == "array":
        return [_sample(schema["items"], variant + i, named, depth + 1) for i in range(variant % 3)]
    if kind == "map":
        return {f"k{i}": _sample(schema["values"], variant + i, named, depth + 1) for i in range(variant % 3)}
    if kind == "fixed":
        return b"\x00" * schema["size"]
    return _PRIMITIVE_SAMPLES[kind]


def _shorten(problem: str) -> str:
    # fastavro's "Schema mismatch" prints both schemas whole: a record's would fill a screen.
    return problem if len(problem) <= _MAX_PROBLEM else problem[: _MAX_PROBLEM - 1] + "…"


def sample_records(parsed: Any) -> list[Any]:
    """Sample values of a fastavro-parsed schema, covering every union branch and enum symbol.

    Args:
        parsed: A schema from ``fastavro.parse_schema``.

    Returns:
        At least three values, each valid for the schema.
    """
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    count = max(3, _choices(parsed, named, set()))
    return [_sample(parsed, variant, named) for variant in range(count)]


def backward_incompatibilities(old_text: str, new_text: str) -> list[str]:
    """List why data written with the old schema cannot be read with the new one.

    Args:
        old_text: JSON text of the previous schema (the writer).
        new_text: JSON text of the new schema (the reader).

    Returns:
        One line per problem found; empty when the new schema reads every sample of the old.
    """
    old = fastavro.parse_schema(json.loads(old_text), {})
    new = fastavro.parse_schema(json.loads(new_text), {})
    problems: list[str] = []
    for i, record in enumerate(sample_records(old)):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, old, record)
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, old, new)
        except Exception as exc:  # noqa: BLE001 - any failure to resolve is the finding
            problem = _shorten(f"{type(exc).__name__}: {exc}")
            if problem not in problems:
                problems.append(problem)
            continue
        if buf.tell() != len(buf.getvalue()):
            problems.append(f"sample {i}: reader stopped before the end of the data")
    return problems
