"""Two workers started at once on a fresh app id (no changelog topic yet) both come up cleanly.

Issue 11: on a fresh stack one of two workers died with ``PartitionsMismatch`` (the changelog topic
seen with 0 partitions) and was restarted by the supervisor. Uploads are waiting before the workers
start, so the first table write follows the first assignment at once, as on a fresh ``make run``.
A race can be lucky, so the fresh start is repeated.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest

from photostream.topics import ensure_topics
from schemas.topics import PHOTO_PROCESSED
from tests.streams.test_worker_failover import photographers_on_distinct_partitions
from tests.streams.uploads import photo, upload
from tests.streams.workers import OutputReader, WorkerGroup, delete_group_topics, start_group_at_end

pytestmark = pytest.mark.integration

ROUNDS = 3
PHOTOGRAPHERS = 6
# aiokafka logs each assignment ("Setting newly assigned partitions {...}"); a worker consuming uploads
# lists photo-uploads in it. (Faust's own assignment table is not relied on: it depends on its log set-up.)
ASSIGNED_UPLOADS = re.compile(r"Setting newly assigned partitions \{[^}]*topic='photo-uploads'")


def consuming(group: WorkerGroup) -> bool:
    """Whether every worker of the group was assigned partitions of photo-uploads."""
    return all(ASSIGNED_UPLOADS.search(worker.output()) for worker in group.workers)


@pytest.mark.timeout(600)
async def test_two_workers_on_a_fresh_app_id_start_without_a_traceback(gateway, local_stack, tmp_path, unique_name):
    ensure_topics(local_stack.kafka)
    for round_ in range(ROUNDS):
        group = WorkerGroup(local_stack.kafka, local_stack.s3, unique_name("test-fresh"), tmp_path / f"round-{round_}")
        group.directory.mkdir()
        start_group_at_end(local_stack.kafka, group.app_id)
        names = photographers_on_distinct_partitions(unique_name, PHOTOGRAPHERS)
        reader = OutputReader(local_stack.kafka, [PHOTO_PROCESSED])
        try:
            accepted = set()
            for index, name in enumerate(names):
                api_key = await gateway.services.keys.create(name)
                (item,) = await upload(gateway, api_key, ("a.jpg", photo(100 * round_ + index, size=(400, 300))))
                accepted.add(uuid.UUID(item["upload_id"]))
            # Both at once, with uploads waiting: the first table write follows the first assignment.
            group.start(), group.start()
            who = set(names)

            def all_processed(r: OutputReader, who: set[str] = who, accepted: set[uuid.UUID] = accepted) -> bool:
                return {event.upload_id for event in r.of(PHOTO_PROCESSED, who)} >= accepted

            assert reader.poll_until(all_processed, timeout=120), group.logs()
            deadline = time.monotonic() + 60
            while not consuming(group) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert consuming(group), f"round {round_}: a worker consumes nothing\n{group.logs()}"
            # A worker that crashed on its first write would have exited by now.
            await asyncio.sleep(2)
            for worker in group.workers:
                log = worker.output()
                assert worker.process.poll() is None, f"round {round_}: a worker exited\n{group.logs()}"
                assert "PartitionsMismatch" not in log, f"round {round_}\n{group.logs()}"
                assert "Traceback" not in log, f"round {round_}\n{group.logs()}"
                # The race's first sign, even when the worker that saw it was not the one assigning.
                assert "not found in cluster metadata" not in log, f"round {round_}\n{group.logs()}"
                assert "Ignoring missing topic" not in log, f"round {round_}\n{group.logs()}"
        finally:
            reader.close()
            group.stop_all()
            delete_group_topics(local_stack.kafka, group.app_id)
