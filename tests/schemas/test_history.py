"""Every published version of each schema is kept in ``schemas/history/`` and still readable.

No git: the files are the record, so these tests run the same in a shallow clone or a tarball.
The ``tmp_path`` tests change copies of the schemas, never the real files.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from schemas.catalog import HISTORY_DIR, PACKAGE, load_catalog, parse_schema_text
from schemas.compat import sample_records
from schemas.history import (
    SUBSCRIBED_RECORDS,
    current_records,
    history_problems,
    published_versions,
    stray_entries,
)
from schemas.serde import EventSerde
from schemas.single_object import SingleObjectFormat
from schemas.topics import EVENT_BY_TOPIC, SUBSCRIBABLE_TOPICS

ROOT = resources.files(PACKAGE)
RECORDS = current_records(ROOT)
TOPIC_OF_RECORD = {cls.__name__: topic for topic, cls in EVENT_BY_TOPIC.items()}


def test_every_topic_has_its_schema_here() -> None:
    # An empty RECORDS would make the parametrized tests below collect nothing and pass.
    assert sorted(TOPIC_OF_RECORD) == RECORDS


@pytest.mark.parametrize("record", RECORDS)
def test_schema_has_a_published_version(record: str) -> None:
    assert published_versions(ROOT).get(record), f"copy schemas/{record}.avsc to schemas/history/{record}.v1.avsc"


@pytest.mark.parametrize("record", RECORDS)
def test_schema_is_recorded_and_reads_every_published_version(record: str) -> None:
    problems = history_problems(ROOT, record)
    assert problems == [], "\n".join(problems)


def test_history_holds_only_versions_of_current_schemas() -> None:
    problems = stray_entries(ROOT)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("record", RECORDS)
def test_messages_of_every_published_version_decode_into_events(record: str) -> None:
    # Through the real wire path: the writer is found by fingerprint in the shipped catalog (so the
    # history must be packaged), resolved into the current schema, and built into the event class.
    serde = EventSerde()
    framing = SingleObjectFormat(load_catalog())
    topic = TOPIC_OF_RECORD[record]
    for version in published_versions(ROOT)[record]:
        writer = parse_schema_text(version.data.decode("utf-8"))
        assert writer.fingerprint in load_catalog().writers, f"{version.path} is not shipped"
        for sample in sample_records(writer.parsed):
            event = serde.decode(framing.encode(sample, writer, topic), topic)
            assert type(event).__name__ == record


@pytest.fixture
def schemas_copy(tmp_path: Path) -> Path:
    """The current schemas and their history, copied so a test can change them."""
    (tmp_path / HISTORY_DIR).mkdir()
    for name in (*(f"{r}.avsc" for r in RECORDS), *(f"{HISTORY_DIR}/{f.name}" for f in (ROOT / HISTORY_DIR).iterdir())):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    return tmp_path


def _edit(path: Path, field: dict) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"].append(field)
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


def _publish(root: Path, record: str, number: int) -> None:
    (root / HISTORY_DIR / f"{record}.v{number}.avsc").write_bytes((root / f"{record}.avsc").read_bytes())


LICENSE_WITH_DEFAULT = {"name": "license", "type": ["null", "string"], "default": None, "doc": "x"}
LICENSE_WITHOUT_DEFAULT = {"name": "license", "type": "string", "doc": "x"}


def test_the_copy_is_clean(schemas_copy: Path) -> None:
    assert [history_problems(schemas_copy, r) for r in RECORDS] == [[] for _ in RECORDS]
    assert stray_entries(schemas_copy) == []


def test_an_edited_but_unrecorded_schema_fails_saying_what_to_do(schemas_copy: Path) -> None:
    _edit(schemas_copy / "UploadReceived.avsc", LICENSE_WITH_DEFAULT)
    assert history_problems(schemas_copy, "UploadReceived") == [
        "schemas/UploadReceived.avsc changed since its newest published version"
        " schemas/history/UploadReceived.v1.avsc: copy schemas/UploadReceived.avsc to"
        " schemas/history/UploadReceived.v2.avsc (never edit a published version)"
    ]
    _publish(schemas_copy, "UploadReceived", 2)
    assert history_problems(schemas_copy, "UploadReceived") == []


def test_a_doc_only_edit_also_needs_a_new_version(schemas_copy: Path) -> None:
    # The fingerprint ignores docs, but a registry registers the text as a new version.
    path = schemas_copy / "ImageReady.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["doc"] += " Edited."
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    problems = history_problems(schemas_copy, "ImageReady")
    assert len(problems) == 1
    assert "copy schemas/ImageReady.avsc to schemas/history/ImageReady.v2.avsc" in problems[0]


def test_an_incompatible_change_fails_even_when_recorded(schemas_copy: Path) -> None:
    _edit(schemas_copy / "UploadReceived.avsc", LICENSE_WITHOUT_DEFAULT)
    _publish(schemas_copy, "UploadReceived", 2)
    problems = history_problems(schemas_copy, "UploadReceived")
    assert len(problems) == 1
    assert problems[0].startswith(
        "schemas/UploadReceived.avsc cannot read data written with schemas/history/UploadReceived.v1.avsc:"
    )
    assert "license" in problems[0]


def _drop(path: Path, field: str) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field]
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


def test_a_subscribed_event_must_stay_readable_by_subscribers_on_older_versions(schemas_copy: Path) -> None:
    # Dropping a field without a default: the new schema reads old data (it ignores the field),
    # but a subscriber still on v1 needs the field and cannot read what the new schema writes.
    _drop(schemas_copy / "ImageReady.avsc", "received_at")
    _publish(schemas_copy, "ImageReady", 2)
    problems = history_problems(schemas_copy, "ImageReady")
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "a subscriber on schemas/history/ImageReady.v1.avsc cannot read data written with schemas/ImageReady.avsc:"
    )
    assert "received_at" in problems[0]


def test_every_event_but_the_internal_variants_is_subscribed() -> None:
    assert sorted(SUBSCRIBED_RECORDS) == [
        "ImageProcessed",
        "ImageReady",
        "ProcessingFailed",
        "UploadDeleted",
        "UploadReceived",
    ]


@pytest.mark.parametrize("record", [EVENT_BY_TOPIC[topic].__name__ for topic in SUBSCRIBABLE_TOPICS])
def test_each_subscribed_event_is_checked_against_every_version_in_both_directions(
    schemas_copy: Path, record: str
) -> None:
    # photographer_id has no default in any of them: the new schema still reads old data, but
    # a subscriber on any published version can no longer read what the new one writes.
    versions = published_versions(schemas_copy)[record]
    _drop(schemas_copy / f"{record}.avsc", "photographer_id")
    _publish(schemas_copy, record, len(versions) + 1)
    problems = history_problems(schemas_copy, record)
    assert [p.split(": ", 1)[0] for p in problems] == [
        f"a subscriber on {v.path} cannot read data written with schemas/{record}.avsc" for v in versions
    ]
    assert all("photographer_id" in p for p in problems), problems


def test_the_internal_variants_event_needs_only_backward_compatibility(schemas_copy: Path) -> None:
    _drop(schemas_copy / "VariantRendered.avsc", "rendered_at")
    _publish(schemas_copy, "VariantRendered", 2)
    assert history_problems(schemas_copy, "VariantRendered") == []


def test_every_earlier_version_is_checked_not_only_the_newest(schemas_copy: Path) -> None:
    # v2 added a field without a default (v2 itself was never checked against v1 here); v3 reads
    # v2's data, but not v1's, which the topic may still hold.
    current = schemas_copy / "UploadReceived.avsc"
    _edit(current, LICENSE_WITHOUT_DEFAULT)
    _publish(schemas_copy, "UploadReceived", 2)
    _edit(current, {"name": "rating", "type": ["null", "int"], "default": None, "doc": "x"})
    _publish(schemas_copy, "UploadReceived", 3)
    problems = history_problems(schemas_copy, "UploadReceived")
    assert [p.split(":")[0] for p in problems] == [
        "schemas/UploadReceived.avsc cannot read data written with schemas/history/UploadReceived.v1.avsc"
    ]


def test_a_schema_without_history_fails_saying_what_to_do(schemas_copy: Path) -> None:
    (schemas_copy / HISTORY_DIR / "VariantRendered.v1.avsc").unlink()
    assert history_problems(schemas_copy, "VariantRendered") == [
        "schemas/VariantRendered.avsc has no published version: copy it to schemas/history/VariantRendered.v1.avsc"
    ]


def test_a_gap_in_the_versions_fails(schemas_copy: Path) -> None:
    _edit(schemas_copy / "UploadReceived.avsc", LICENSE_WITH_DEFAULT)
    _publish(schemas_copy, "UploadReceived", 3)
    problems = history_problems(schemas_copy, "UploadReceived")
    assert len(problems) == 1
    assert "has UploadReceived v1, v3" in problems[0]


def test_a_version_of_another_record_fails(schemas_copy: Path) -> None:
    # The wrong file copied: ImageReady's v2 is UploadReceived's text.
    _publish(schemas_copy, "UploadReceived", 2)
    (schemas_copy / HISTORY_DIR / "UploadReceived.v2.avsc").rename(schemas_copy / HISTORY_DIR / "ImageReady.v2.avsc")
    assert history_problems(schemas_copy, "ImageReady") == [
        "schemas/ImageReady.avsc changed since its newest published version schemas/history/ImageReady.v2.avsc:"
        " copy schemas/ImageReady.avsc to schemas/history/ImageReady.v3.avsc (never edit a published version)",
        "schemas/history/ImageReady.v2.avsc defines photostream.events.UploadReceived,"
        " schemas/ImageReady.avsc defines photostream.events.ImageReady",
    ]


def test_misnamed_and_orphaned_history_files_fail(schemas_copy: Path) -> None:
    history = schemas_copy / HISTORY_DIR
    v1 = (history / "UploadReceived.v1.avsc").read_bytes()
    (history / "UploadReceived-2.avsc").write_bytes(v1)
    (history / "UploadReceived.v0.avsc").write_bytes(v1)
    (history / "PhotoDeleted.v1.avsc").write_bytes(v1)
    assert stray_entries(schemas_copy) == [
        "schemas/history/PhotoDeleted.v1.avsc: there is no schemas/PhotoDeleted.avsc it could be a version of",
        "schemas/history/UploadReceived-2.avsc: name it <Record>.v<N>.avsc, N counted from 1",
        "schemas/history/UploadReceived.v0.avsc: name it <Record>.v<N>.avsc, N counted from 1",
    ]
