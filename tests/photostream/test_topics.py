"""``ensure_topics`` returns only once the broker serves every topic, also to a caller that lost the race.

Kafka acknowledges a creation (and answers "already exists" to a second caller) a few
milliseconds before its metadata lists the topic; a Faust worker whose group was assigned in
between saw its changelog with 0 partitions and stopped (issue 11).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from photostream.topics import PARTITIONS, ensure_topics, worker_topics
from tests.streams.workers import delete_group_topics

pytestmark = pytest.mark.integration

# The window is a few milliseconds and not always open: several fresh sets make it show.
FRESH_SETS = 10


@pytest.fixture
def watcher(local_stack):
    """An admin client asking the broker for metadata, as a Faust worker starting next would."""
    ensure_topics(local_stack.kafka)  # the pipeline's own topics, so only the workers' are new
    return AdminClient({"bootstrap.servers": local_stack.kafka.bootstrap_servers})


def served_partitions(admin: AdminClient, name: str) -> int:
    """How many partitions with a leader the broker's metadata lists for ``name`` right now."""
    topic = admin.list_topics(timeout=10).topics.get(name)
    if topic is None or topic.error is not None:
        return 0
    return sum(1 for partition in topic.partitions.values() if partition.leader >= 0 and partition.error is None)


def test_created_topics_are_served_when_ensure_topics_returns(local_stack, watcher, unique_name):
    app_ids = [unique_name("test-topics") for _ in range(FRESH_SETS)]
    try:
        seen = []
        for app_id in app_ids:
            ensure_topics(local_stack.kafka, worker_topics(app_id, ["duplicates"]))
            seen.append(served_partitions(watcher, f"{app_id}-duplicates-changelog"))
        assert seen == [PARTITIONS] * FRESH_SETS
        (configs,) = watcher.describe_configs([ConfigResource("topic", f"{app_ids[0]}-duplicates-changelog")]).values()
        assert configs.result(timeout=10)["cleanup.policy"].value == "compact"
    finally:
        for app_id in app_ids:
            delete_group_topics(local_stack.kafka, app_id)


def test_two_workers_starting_together_both_return_with_the_topics_served(local_stack, watcher, unique_name):
    app_ids = [unique_name("test-topics") for _ in range(FRESH_SETS)]

    def start(app_id: str) -> tuple[int, int, int]:
        created = ensure_topics(local_stack.kafka, worker_topics(app_id, ["duplicates"]))
        changelog = served_partitions(watcher, f"{app_id}-duplicates-changelog")
        return len(created), changelog, served_partitions(watcher, f"{app_id}-__assignor-__leader")

    try:
        with ThreadPoolExecutor(2) as pool:
            for app_id in app_ids:
                results = list(pool.map(start, [app_id, app_id]))
                # One of them created both topics, the other found them: neither failed on it.
                assert sorted(created for created, _, _ in results) == [0, 2], results
                assert [served for _, *served in results] == [[PARTITIONS, 1]] * 2, results
    finally:
        for app_id in app_ids:
            delete_group_topics(local_stack.kafka, app_id)
