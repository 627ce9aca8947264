"""The shipped schemas: every ``.avsc`` in this package, parsed once, indexed by name and fingerprint.

Each ``.avsc`` is self-contained: nested named types (``ImageMetadata``, ``StoredVariant``,
``FailureReason``) are defined inline in the one event that uses them. So a file's text is a
complete writer schema for the registry, and each of its published versions in ``history/`` can be
parsed on its own for compatibility checks. Each file is therefore parsed with its own
fastavro ``named_schemas`` dict, and a named type defined by two files is refused, so a full name
means one thing across the whole contract.

``history/<Record>.v<N>.avsc`` holds every published version of each schema (``schemas.history``
checks it), loaded here so that messages already in the log (single-object encoding names its
writer only by fingerprint) stay readable after a change.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.errors import SchemaLoadError

PACKAGE = "schemas"
HISTORY_DIR = "history"


@dataclass(frozen=True, slots=True)
class ShippedSchema:
    """One parsed schema file.

    Attributes:
        name: Full name of the top-level record, e.g. ``photostream.events.UploadReceived``.
        text: The file's JSON text, as handed to a schema registry.
        parsed: The fastavro-parsed schema, for fastavro's readers and writers.
        canonical_form: The Avro Parsing Canonical Form.
        fingerprint: CRC-64-AVRO of the canonical form, as the 8 little-endian bytes that follow
            ``C3 01`` in a single-object encoding.
    """

    name: str
    text: str
    parsed: Any
    canonical_form: str
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every schema this build knows.

    Attributes:
        current: Record full name to the current (reader) schema.
        writers: Fingerprint to any schema this build can read: current ones and ``history/``.
    """

    current: Mapping[str, ShippedSchema]
    writers: Mapping[bytes, ShippedSchema]


def parse_schema_text(text: str, named_schemas: dict[str, Any] | None = None) -> ShippedSchema:
    """Parse one ``.avsc`` text and compute its canonical form and fingerprint.

    Args:
        text: JSON text of an Avro schema whose top level is a named record.
        named_schemas: Shared fastavro named-type dict; a fresh one when None.

    Returns:
        The parsed schema.

    Raises:
        SchemaLoadError: The text is not JSON, not valid Avro, or not a named record.
    """
    try:
        raw = json.loads(text)
        parsed = fastavro.parse_schema(raw, named_schemas if named_schemas is not None else {})
        canonical = to_parsing_canonical_form(parsed)
    except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException, fastavro.schema.UnknownType) as exc:
        raise SchemaLoadError(f"invalid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaLoadError("a schema file must define one record at its top level")
    # fastavro returns the 8 fingerprint bytes little-endian as hex, which is exactly the
    # single-object header's byte order (Avro spec); tests check this against the spec's algorithm.
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return ShippedSchema(name=parsed["name"], text=text, parsed=parsed, canonical_form=canonical, fingerprint=fp)


def _avsc_files(folder: Traversable) -> list[Traversable]:
    if not folder.is_dir():
        return []
    return sorted((f for f in folder.iterdir() if f.name.endswith(".avsc") and f.is_file()), key=lambda f: f.name)


@functools.cache
def load_catalog() -> Catalog:
    """Load every shipped schema once per process.

    Returns:
        The catalog of current and historical schemas.

    Raises:
        SchemaLoadError: A file is invalid, two files define the same named type, or a file's
            record name does not match its file name.
    """
    root = resources.files(PACKAGE)
    defined_by: dict[str, str] = {}
    current: dict[str, ShippedSchema] = {}
    writers: dict[bytes, ShippedSchema] = {}
    for path in _avsc_files(root):
        named: dict[str, Any] = {}
        try:
            schema = parse_schema_text(path.read_text(encoding="utf-8"), named)
        except SchemaLoadError as exc:
            raise SchemaLoadError(f"{path.name}: {exc}") from exc
        for name in named:
            if name in defined_by:
                raise SchemaLoadError(f"{path.name}: redefines {name}, already defined in {defined_by[name]}")
            defined_by[name] = path.name
        if schema.name.rsplit(".", 1)[-1] != path.name.removesuffix(".avsc"):
            raise SchemaLoadError(f"{path.name}: defines {schema.name}; name the file after its record")
        current[schema.name] = schema
        writers[schema.fingerprint] = schema
    for path in _avsc_files(root / HISTORY_DIR):
        try:
            # Own named-type dict: an old version redefines the same names as the current one.
            schema = parse_schema_text(path.read_text(encoding="utf-8"))
        except SchemaLoadError as exc:
            raise SchemaLoadError(f"{HISTORY_DIR}/{path.name}: {exc}") from exc
        writers.setdefault(schema.fingerprint, schema)
    return Catalog(current=MappingProxyType(current), writers=MappingProxyType(writers))
