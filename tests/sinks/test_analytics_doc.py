"""docs/analytics.md: ten questions, one SQL block each, and every query runs against the real schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from sinks.clickhouse_schema import TABLES, VIEWS, migrate
from tests.sinks.pipeline_data import DATABASE, build_pipeline, chdb, insert_events

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
QUESTION = re.compile(r"^### (\d+)\. (.+)$", re.MULTILINE)
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _questions() -> list[tuple[int, str, list[str]]]:
    """(number, question, sql blocks) for each ``### N. question`` section."""
    text = DOC.read_text(encoding="utf-8")
    # Questions run to the next heading of any level, or to the end.
    heads = list(QUESTION.finditer(text))
    sections = []
    for head in heads:
        following = re.compile(r"^#{1,3} ", re.MULTILINE).search(text, head.end())
        body = text[head.end() : following.start() if following else len(text)]
        sections.append((int(head.group(1)), head.group(2), SQL_BLOCK.findall(body)))
    return sections


QUESTIONS = _questions()


def test_ten_numbered_questions_with_one_sql_block_each():
    assert [number for number, _, _ in QUESTIONS] == list(range(1, 11))
    for number, question, blocks in QUESTIONS:
        assert len(blocks) == 1, f"question {number} ({question}) has {len(blocks)} sql blocks"
        assert f"{DATABASE}." in blocks[0]


def test_every_table_and_view_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for name in (*TABLES, *VIEWS):
        assert f"### `{name}`" in text, name


def test_every_query_runs_against_the_sample_pipeline(tmp_path):
    # One chDB for all ten: a query error names its question, and the engine opens once.
    with chdb(tmp_path) as client:
        migrate(client, DATABASE)
        insert_events(client, build_pipeline().events)
        for number, question, (sql,) in QUESTIONS:
            try:
                rows = client.query(sql).result_rows
            except Exception as error:  # noqa: BLE001 (re-raised with the question that failed)
                pytest.fail(f"question {number} ({question}) failed: {error}")
            # The sample run sits in the last ten minutes, so every question has an answer; only "today"
            # may still be empty in the first minutes after midnight UTC.
            if "toStartOfDay(now('UTC'))" in sql and datetime.now(UTC).time() < time(0, 10):
                continue
            assert rows, f"question {number} ({question}) returned no rows"


def test_the_deleted_images_section_says_what_every_view_does_with_them():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Deleted images") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert named == set(VIEWS)
