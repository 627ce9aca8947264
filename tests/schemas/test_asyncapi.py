"""docs/asyncapi.yaml, read by the official AsyncAPI parser, against the schemas photostream loads.

``tests/asyncapi/check.mjs`` parses the document with ``@asyncapi/parser`` and
``@asyncapi/avro-schema-parser`` (locked in ``tests/asyncapi/package-lock.json``) and prints what
it parsed as one JSON line. These tests need node and npm, no server: ``npm ci`` runs once, when
``node_modules`` is missing or older than the lock.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from photostream.topics import TOPICS
from schemas.catalog import load_catalog, parse_schema_text
from schemas.topics import (
    EVENT_BY_TOPIC,
    PHOTO_DELETED,
    PHOTO_PROCESSED,
    PHOTO_READY,
    PHOTO_UPLOADS,
    PHOTO_VARIANTS,
    SUBSCRIBABLE_TOPICS,
)
from tests.tools import npm_ci

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
CHECK_DIR = ROOT / "tests" / "asyncapi"
CHECK = CHECK_DIR / "check.mjs"
SPEC_BY_TOPIC = {spec.name: spec for spec in TOPICS}


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with tests/asyncapi's locked packages installed."""
    npm_ci(CHECK_DIR)
    return "node"


@pytest.fixture(scope="module")
def run_check(node: str) -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """Run check.mjs on a document; it finds its packages next to itself, wherever the document is."""

    def run(document: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([node, CHECK, document], capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture(scope="module")
def checked(run_check: Callable[[Path], subprocess.CompletedProcess[str]]) -> subprocess.CompletedProcess[str]:
    return run_check(DOCUMENT)


@pytest.fixture(scope="module")
def parsed(checked: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if checked.returncode != 0:
        pytest.fail(f"the parser rejected {DOCUMENT}:\n{checked.stderr}")
    lines = checked.stdout.splitlines()
    assert len(lines) == 1, checked.stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def channels(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {channel["address"]: channel for channel in parsed["channels"]}


def test_the_parser_accepts_the_document(checked: subprocess.CompletedProcess[str]) -> None:
    assert checked.returncode == 0, checked.stderr


def test_the_document_describes_this_release(parsed: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert parsed["asyncapi"] == "3.0.0"
    assert parsed["version"] == project["version"]


def test_channels_are_exactly_the_subscribable_topics(parsed: dict[str, Any]) -> None:
    addresses = [channel["address"] for channel in parsed["channels"]]
    assert sorted(addresses) == sorted(SUBSCRIBABLE_TOPICS)
    assert len(addresses) == len(set(addresses))
    assert PHOTO_VARIANTS not in addresses


@pytest.mark.parametrize("topic", SUBSCRIBABLE_TOPICS)
def test_each_channel_carries_the_current_schema_of_its_event(channels: dict[str, dict[str, Any]], topic: str) -> None:
    event = EVENT_BY_TOPIC[topic]
    current = load_catalog().current[event.schema_name()]
    (message,) = channels[topic]["messages"]
    assert message["name"] == event.__name__
    assert message["schemaFormat"].startswith("application/vnd.apache.avro;")
    assert message["payload"] == {
        "name": current.name,
        "fields": [field["name"] for field in current.parsed["fields"]],
    }
    assert message["keyType"] == "string"


@pytest.mark.parametrize("topic", SUBSCRIBABLE_TOPICS)
def test_each_payload_references_the_file_the_catalog_loads(topic: str) -> None:
    """Same name and fields could still come from another version of the file: compare fingerprints."""
    document = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    event = EVENT_BY_TOPIC[topic]
    (channel,) = (channel for channel in document["channels"].values() if channel["address"] == topic)
    (ref,) = (message["$ref"] for message in channel["messages"].values())
    message = document["components"]["messages"][ref.removeprefix("#/components/messages/")]
    referenced = (DOCUMENT.parent / message["payload"]["schema"]["$ref"]).resolve()
    shipped = parse_schema_text(referenced.read_text(encoding="utf-8"))
    assert shipped.fingerprint == load_catalog().current[event.schema_name()].fingerprint


@pytest.mark.parametrize("topic", SUBSCRIBABLE_TOPICS)
def test_each_channel_has_the_topics_partitions_and_configs(channels: dict[str, dict[str, Any]], topic: str) -> None:
    spec = SPEC_BY_TOPIC[topic]
    channel = channels[topic]
    assert channel["partitions"] == spec.partitions
    configured = {name: str(value) for name, value in channel["topicConfiguration"].items()}
    assert {name: configured.get(name) for name in spec.config} == spec.config


def test_deletes_are_kept_as_long_as_the_events_they_delete() -> None:
    """docs/subscribers.md and the photo-deleted channel promise that a replay finds the deletes."""
    kept = int(SPEC_BY_TOPIC[PHOTO_DELETED].config["retention.ms"])
    for topic in (PHOTO_UPLOADS, PHOTO_PROCESSED, PHOTO_READY):
        assert kept >= int(SPEC_BY_TOPIC[topic].config["retention.ms"]), topic


def test_subscribers_receive_from_every_channel_and_send_nothing(parsed: dict[str, Any]) -> None:
    assert {operation["action"] for operation in parsed["operations"]} == {"receive"}
    received = sorted(address for operation in parsed["operations"] for address in operation["channel"])
    assert received == sorted(SUBSCRIBABLE_TOPICS)


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A copy of docs/asyncapi.yaml with a copy of schemas/ beside it, as in the repository."""
    (tmp_path / "docs").mkdir()
    shutil.copy(DOCUMENT, tmp_path / "docs" / DOCUMENT.name)
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return tmp_path / "docs" / DOCUMENT.name


def _unknown_field_type(root: Path) -> str:
    path = root / "schemas" / "ImageReady.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"][0]["type"] = "uuid_string"  # no such Avro type
    path.write_text(json.dumps(schema), encoding="utf-8")
    return "undefined type name"


def _bad_enum_default(root: Path) -> str:
    path = root / "schemas" / "ProcessingFailed.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    (reason,) = (field for field in schema["fields"] if field["name"] == "reason")
    reason["type"]["default"] = "gone"  # not one of the symbols
    path.write_text(json.dumps(schema), encoding="utf-8")
    return 'default: "gone"'


def _missing_file(root: Path) -> str:
    (root / "schemas" / "UploadReceived.avsc").unlink()
    return "invalid-ref"


def _unchecked_schema_format(root: Path) -> str:
    document = root / "docs" / DOCUMENT.name
    text = document.read_text(encoding="utf-8")
    # A format the Avro parser does not register: @asyncapi/parser alone would pass it unchecked.
    document.write_text(text.replace("avro;version=1.9.0", "avro;version=1.11.0"), encoding="utf-8")
    return "no schema parser registered"


@pytest.mark.parametrize(
    "mutate",
    [_unknown_field_type, _bad_enum_default, _missing_file, _unchecked_schema_format],
    ids=["unknown-field-type", "bad-enum-default", "missing-avsc", "unchecked-schema-format"],
)
def test_the_check_fails_on_a_broken_copy(
    run_check: Callable[[Path], subprocess.CompletedProcess[str]], copied: Path, mutate: Callable[[Path], str]
) -> None:
    expected = mutate(copied.parent.parent)
    run = run_check(copied)
    assert run.returncode != 0, run.stdout
    assert expected in run.stderr
    assert run.stdout == ""


def test_the_check_passes_on_an_intact_copy(
    run_check: Callable[[Path], subprocess.CompletedProcess[str]], copied: Path
) -> None:
    """The control for the broken copies: the copy alone does not fail the check."""
    run = run_check(copied)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["document"] == str(copied)
