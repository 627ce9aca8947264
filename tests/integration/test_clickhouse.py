"""ClickHouse through clickhouse-connect on the embedded chDB engine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from photostream.clients import clickhouse_client
from photostream.config import ClickHouseSettings

pytestmark = pytest.mark.integration


def test_mergetree_create_insert_query(tmp_path):
    client = clickhouse_client(ClickHouseSettings(dsn=f"chdb://{tmp_path / 'clickhouse'}"))
    try:
        client.command("CREATE DATABASE IF NOT EXISTS photostream_test")
        client.command(
            """
            CREATE TABLE photostream_test.uploads (
                upload_id UUID,
                photographer_id LowCardinality(String),
                bytes UInt64,
                received_at DateTime64(3, 'UTC')
            ) ENGINE = MergeTree ORDER BY (photographer_id, received_at)
            """
        )
        now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        rows = [["00000000-0000-0000-0000-00000000000" + str(i), f"p{i % 2}", 1000 * (i + 1), now] for i in range(6)]
        client.insert(
            "photostream_test.uploads", rows, column_names=["upload_id", "photographer_id", "bytes", "received_at"]
        )

        result = client.query(
            "SELECT photographer_id, count(), sum(bytes) FROM photostream_test.uploads "
            "GROUP BY photographer_id ORDER BY photographer_id"
        )
        assert result.result_rows == [("p0", 3, 9000), ("p1", 3, 12000)]
        engine = client.query(
            "SELECT engine FROM system.tables WHERE database = 'photostream_test' AND name = 'uploads'"
        ).result_rows
        assert engine == [("MergeTree",)]
    finally:
        client.close()
