"""The analytics benchmark's generator at a tiny scale: exact counts, one identity per upload, and every question
of docs/analytics.md answered."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from bench.analytics import build
from bench.analytics_adapter import open_reader, open_writer, settings_for
from bench.analytics_data import QUEUED_STORING, QUEUED_WAITING, VARIANTS, Scale
from bench.analytics_measure import exactness, questions

pytestmark = pytest.mark.integration

DATABASE = "photostream"


@pytest.fixture
async def built(tmp_path):
    settings = settings_for(tmp_path / "clickhouse", DATABASE)
    writer, reader = open_writer(settings), open_reader(settings)
    try:
        yield await build(writer, DATABASE, Scale(days=1, photos_per_day=2_000), None), reader
    finally:
        await reader.close()
        writer.close()


async def test_the_counts_are_what_was_asked_and_what_an_analyst_sees(built):
    info, reader = built
    expected = info["expected_counts"]
    assert expected.uploads == 2_000
    assert expected.variants == len(VARIANTS) * expected.ready
    assert expected.completed == expected.ready
    assert expected.uploads == expected.completed + expected.failed + expected.queued
    # 0.5 % failed (the tail's one in 200 included), and a handful queued beyond the tail's uploads in flight
    assert 9 <= expected.failures <= 11
    assert expected.queued >= QUEUED_WAITING + QUEUED_STORING
    checks = await exactness(reader, DATABASE, expected, None)
    assert [(c.name, c.expected, c.seen) for c in checks if not c.ok] == []


async def test_every_row_of_an_upload_shares_its_identity_and_receipt_time(built):
    _, reader = built
    for table in ("images", "ready", "variants", "failures"):
        orphans = await reader.query(
            f"SELECT count() FROM {DATABASE}.{table} AS t FINAL "
            f"LEFT ANTI JOIN (SELECT upload_id, photographer_id, received_at FROM {DATABASE}.uploads FINAL) AS u "
            "ON t.upload_id = u.upload_id AND t.photographer_id = u.photographer_id AND t.received_at = u.received_at"
        )
        assert orphans.rows[0][0] == 0, table


async def test_every_question_of_the_doc_has_an_answer(built):
    _, reader = built
    asked = questions(DATABASE)
    assert [q.name for q in asked] == [f"Q{n}" for n in range(1, 11)]
    for question in asked:
        answer = await reader.query(question.sql)
        # "today" may still be empty in the first minutes after midnight UTC
        if "toStartOfDay(now('UTC'))" in question.sql and datetime.now(UTC).time() < time(0, 10):
            continue
        assert answer.rows, f"{question.name} ({question.title}) returned no rows"
