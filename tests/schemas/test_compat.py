"""Schema changes stay backward compatible: the new schema reads what the committed one wrote.

Each .avsc is compared with the version it replaces: HEAD's while the file has uncommitted
edits, otherwise the version before the last commit that changed it. The test skips cleanly
when git is missing, this is not a checkout, or the file has no earlier version.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from schemas.catalog import load_catalog, parse_schema_text
from schemas.compat import backward_incompatibilities, sample_records
from schemas.events import FailureReason

REPO = Path(__file__).resolve().parents[2]
AVSC = sorted(p.name for p in resources.files("schemas").iterdir() if p.name.endswith(".avsc"))


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30)


def _committed(name: str) -> str:
    """The version this schema replaces: HEAD's while it has uncommitted edits, else the one
    before the last commit that changed it (so CI on a clean clone checks the newest change)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path = f"schemas/{name}"
    current = (resources.files("schemas") / name).read_text(encoding="utf-8")
    head = _git("show", f"HEAD:{path}")
    if head.returncode == 0 and head.stdout != current:
        return head.stdout
    last_change = _git("log", "-n", "1", "--format=%H", "--", path).stdout.strip()
    if not last_change:
        pytest.skip(f"{path} has no committed history here")
    before = _git("show", f"{last_change}^:{path}")
    if before.returncode != 0:
        pytest.skip(f"{path} has no version before {last_change[:12]}: it was added there")
    return before.stdout


@pytest.mark.parametrize("name", AVSC)
def test_current_schema_reads_data_of_the_committed_one(name: str) -> None:
    old = _committed(name)
    new = (resources.files("schemas") / name).read_text(encoding="utf-8")
    assert backward_incompatibilities(old, new) == []


@pytest.mark.parametrize("name", AVSC)
def test_committed_writer_stays_decodable(name: str) -> None:
    # Single-object messages name their writer only by fingerprint: a changed schema must keep its
    # previous version in schemas/history/, or messages already in the log become unreadable.
    old = parse_schema_text(_committed(name))
    assert old.fingerprint in load_catalog().writers, (
        f"schemas/{name} changed; copy its previous version to schemas/history/"
    )


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
