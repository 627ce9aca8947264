"""The single-object header is exactly what the Avro specification says.

The fingerprint is recomputed here without fastavro: the Parsing Canonical Form from the spec's
transformation rules, and CRC-64-AVRO from the spec's reference algorithm, itself checked against
test vectors published by the Apache Avro project (share/test/data/schema-tests.txt).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from schemas.catalog import load_catalog
from schemas.events import Event
from schemas.serde import EventSerde
from tests.schemas.samples import ALL_EVENTS, event_id, topic_of

_EMPTY64 = 0xC15D213AA4D7A795
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    return table


_FP_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    """The Avro spec's reference fingerprint64, transcribed from its Java listing."""
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ _FP_TABLE[(fp ^ byte) & 0xFF]
    return fp


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def canonical_form(schema: Any, namespace: str = "", seen: set[str] | None = None) -> str:
    """Parsing Canonical Form per the spec: PRIMITIVES, FULLNAMES, STRIP, ORDER, STRINGS, WHITESPACE."""
    seen = set() if seen is None else seen
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(s, namespace, seen) for s in schema) + "]"
    if isinstance(schema, str):
        return json.dumps(schema if schema in _PRIMITIVES else _fullname(schema, namespace), ensure_ascii=False)
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return canonical_form(kind, namespace, seen)
    if kind in _PRIMITIVES:
        return json.dumps(kind)  # logicalType and every other attribute are stripped
    if kind == "array":
        return '{"type":"array","items":' + canonical_form(schema["items"], namespace, seen) + "}"
    if kind == "map":
        return '{"type":"map","values":' + canonical_form(schema["values"], namespace, seen) + "}"
    full = _fullname(schema["name"], schema.get("namespace", namespace))
    if full in seen:
        return json.dumps(full, ensure_ascii=False)
    seen.add(full)
    inner = full.rpartition(".")[0]
    head = '{"name":' + json.dumps(full, ensure_ascii=False) + ',"type":'
    if kind in ("record", "error"):
        fields = ",".join(
            '{"name":'
            + json.dumps(f["name"], ensure_ascii=False)
            + ',"type":'
            + canonical_form(f["type"], inner, seen)
            + "}"
            for f in schema["fields"]
        )
        return head + '"record","fields":[' + fields + "]}"
    if kind == "enum":
        return head + '"enum","symbols":' + json.dumps(schema["symbols"], separators=(",", ":")) + "}"
    if kind == "fixed":
        return head + '"fixed","size":' + str(int(schema["size"])) + "}"
    raise ValueError(f"unknown type {kind}")


# (canonical form, fingerprint as the Avro project publishes it: a signed Java long)
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"long"', -3434872931120570953),
    ('{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651),
]


@pytest.mark.parametrize(("canonical", "expected"), SPEC_VECTORS)
def test_reference_crc64_matches_the_avro_projects_vectors(canonical: str, expected: int) -> None:
    assert crc64_avro(canonical.encode()) == expected & 0xFFFF_FFFF_FFFF_FFFF


@pytest.mark.parametrize("name", sorted(load_catalog().current))
def test_canonical_form_and_fingerprint_match_an_independent_computation(name: str) -> None:
    shipped = load_catalog().current[name]
    expected_form = canonical_form(json.loads(shipped.text))
    assert shipped.canonical_form == expected_form
    assert shipped.fingerprint == struct.pack("<Q", crc64_avro(expected_form.encode("utf-8")))


@pytest.mark.parametrize("event", ALL_EVENTS, ids=event_id)
def test_single_object_header(event: Event) -> None:
    data = EventSerde().encode(event, topic_of(event))
    schema_text = load_catalog().current[type(event).schema_name()].text
    fingerprint = crc64_avro(canonical_form(json.loads(schema_text)).encode("utf-8"))
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == struct.pack("<Q", fingerprint)


def test_fingerprints_are_distinct() -> None:
    fingerprints = [s.fingerprint for s in load_catalog().current.values()]
    assert len(set(fingerprints)) == len(fingerprints)
