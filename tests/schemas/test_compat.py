"""The compatibility checker itself: what it accepts and what it refuses.

The real schemas are checked against their published versions in ``test_history.py``.
"""

from __future__ import annotations

import json

from schemas.catalog import load_catalog
from schemas.compat import backward_incompatibilities, sample_records
from schemas.events import FailureReason


def _upload_schema() -> dict:
    return json.loads(load_catalog().current["photostream.events.UploadReceived"].text)


def test_checker_accepts_a_new_field_with_a_default() -> None:
    old = _upload_schema()
    new = _upload_schema()
    new["fields"].append({"name": "license", "type": ["null", "string"], "default": None, "doc": "x"})
    assert backward_incompatibilities(json.dumps(old), json.dumps(new)) == []


def test_checker_rejects_a_new_field_without_a_default() -> None:
    old = _upload_schema()
    new = _upload_schema()
    new["fields"].append({"name": "license", "type": "string", "doc": "x"})
    problems = backward_incompatibilities(json.dumps(old), json.dumps(new))
    assert problems
    assert "license" in problems[0]


def test_checker_rejects_a_narrowed_type() -> None:
    old = _upload_schema()
    new = _upload_schema()
    next(f for f in new["fields"] if f["name"] == "bytes")["type"] = "int"
    assert backward_incompatibilities(json.dumps(old), json.dumps(new))


def test_checker_rejects_a_removed_enum_symbol_only_without_an_enum_default() -> None:
    old = json.loads(load_catalog().current["photostream.events.ProcessingFailed"].text)
    with_default = json.loads(json.dumps(old))
    reason = next(f for f in with_default["fields"] if f["name"] == "reason")["type"]
    reason["symbols"].remove("corrupt")
    assert backward_incompatibilities(json.dumps(old), json.dumps(with_default)) == []
    del reason["default"]
    problems = backward_incompatibilities(json.dumps(old), json.dumps(with_default))
    assert any("corrupt" in p for p in problems)


def test_samples_cover_every_union_branch_and_enum_symbol() -> None:
    parsed = load_catalog().current["photostream.events.ProcessingFailed"].parsed
    samples = sample_records(parsed)
    assert {s["reason"] for s in samples} == {r.value for r in FailureReason}
    assert {s["source_topic"] is None for s in samples} == {True, False}


def test_problems_stay_short_when_fastavro_prints_whole_schemas() -> None:
    old = _upload_schema()
    new = _upload_schema()
    new["name"] = "Renamed"
    problems = backward_incompatibilities(json.dumps(old), json.dumps(new))
    assert problems
    assert all(len(p) <= 300 for p in problems)
    assert problems[0].startswith("SchemaResolutionError: Schema mismatch")
