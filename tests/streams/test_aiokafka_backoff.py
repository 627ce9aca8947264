"""A worker's Kafka client pauses between failed metadata updates instead of asking again at once."""

from __future__ import annotations

import time

from aiokafka.client import AIOKafkaClient

from streams import aiokafka_backoff
from tests.processes import free_port


def test_the_pause_doubles_up_to_a_second():
    assert [aiokafka_backoff.pause_after(n, 0.1) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_failed_updates_in_a_row_are_spaced_out():
    # No broker listens on the port: every update fails at once, as while a broker restarts.
    aiokafka_backoff.install()
    installed = AIOKafkaClient._metadata_update
    aiokafka_backoff.install()
    assert AIOKafkaClient._metadata_update is installed, "a second install would pause twice"
    client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{free_port()}", retry_backoff_ms=50)
    started = time.monotonic()
    outcomes = [await client._metadata_update(client.cluster, set()) for _ in range(4)]
    elapsed = time.monotonic() - started
    assert outcomes == [False] * 4
    # 0.05 + 0.1 + 0.2 + 0.4 s of pauses at least (a sleep never ends early); without them, a few milliseconds.
    assert elapsed >= 0.75
