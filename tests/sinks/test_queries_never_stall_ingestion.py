"""Whatever an analyst asks, uploads keep flowing into ClickHouse (issue found in the field).

With the pipeline running, `photostream sql` sends a query that fails, a write (refused), a
query past the result limit and one past the time limit, while uploads are in flight. Every
upload must still complete, and the sinks must never have met READONLY.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.sinks.test_pipeline_e2e import sql, wait_for_statuses
from tests.streams.uploads import photo, upload

pytestmark = pytest.mark.integration

DB = "photostream"

HOSTILE = (
    ("SELECT count() FROM photostream.no_such_table", "no_such_table"),
    (f"INSERT INTO {DB}.images SELECT * FROM {DB}.images LIMIT 1", "refused"),
    ("SELECT * FROM system.numbers", "read limit"),
    ("SELECT count() FROM numbers(1e12) WHERE sipHash64(number) % 7 = 1", "read limit"),
    ("SELECT a.number FROM numbers(1e6) AS a CROSS JOIN numbers(1e6) AS b", "read limit"),
)


async def test_failing_refused_and_heavy_queries_while_uploads_flow(make_gateway, workers, sinks, unique_name):
    sinks.extra_env.update({"CLICKHOUSE_QUERY_MAX_SECONDS": "3"})
    gateway = await make_gateway()
    photographer = unique_name("ph")
    key = await gateway.services.keys.create(photographer)
    sinks.start()
    workers.start()
    ids: dict[str, str] = {}

    async def send(batch: int) -> None:
        files = [(f"{batch}-{i}.jpg", photo(1000 * batch + i, size=(800, 600))) for i in range(4)]
        for item in await upload(gateway, key, *files):
            ids[item["upload_id"]] = photographer

    await send(0)
    # The analyst's queries run in other processes while the next uploads go in.
    hostile = [asyncio.to_thread(sql, sinks.env, query) for query, _ in HOSTILE]
    uploads = [send(batch) for batch in (1, 2, 3)]
    results = await asyncio.gather(*hostile, *uploads)
    for (query, expected), result in zip(HOSTILE, results, strict=False):
        assert result.returncode != 0, (query, result.stdout[-500:])
        assert expected in result.stderr, (query, result.stderr)

    # After all of it, the same CLI still answers correctly, and every upload completes.
    answer = sql(sinks.env, "--format", "csv", "SELECT number FROM numbers(3)")
    assert answer.stdout.strip().splitlines() == ["number", "0", "1", "2"], answer.stderr
    bodies = await wait_for_statuses(gateway, {photographer: key}, ids)
    statuses = [body["status"] for body in bodies.values()]
    print(f"uploads={len(ids)} completed={statuses.count('completed')} hostile queries={len(HOSTILE)}")
    assert len(ids) == 16
    assert statuses == ["completed"] * len(ids), sinks.logs()
    assert "READONLY" not in sinks.logs()
