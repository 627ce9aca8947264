"""The pipeline's Kafka topics, created by the project itself at start-up, idempotently.

All are keyed by photographer id, so one photographer's events stay in order on one
partition. Partition counts bound how many workers can share the load.

The workers' Faust topics (the duplicate table's changelog, faust's leader topic) are created
here too, before the Faust app starts, and ``ensure_topics`` returns only once the broker serves
their metadata. Left to faust, two workers starting together on a fresh stack raced: Kafka
acknowledges a topic's creation (or answers "already exists" to the second worker) before its
metadata is served, the group leader assigned partitions from metadata without the changelog,
and faust then saw it with 0 partitions and stopped the worker with ``PartitionsMismatch``
(issue 11; ``tests/streams/test_worker_fresh_start.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from photostream.config import KafkaSettings
from schemas.topics import (
    PHOTO_DELETED,
    PHOTO_FAILED,
    PHOTO_PROCESSED,
    PHOTO_PROCESSING,
    PHOTO_READY,
    PHOTO_UPLOADS,
    PHOTO_VARIANTS,
)


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name, partition count and configs."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


# One partition count for every topic: the workers' duplicate table is partitioned like
# photo-uploads, and a photographer's events land on the same partition number everywhere.
PARTITIONS = 12

# Variants carry image bytes (tens to hundreds of KB, a few MB at most for a large web JPEG).
VARIANT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(PHOTO_UPLOADS, PARTITIONS, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
    TopicSpec(
        PHOTO_VARIANTS,
        PARTITIONS,
        {"max.message.bytes": str(VARIANT_MAX_MESSAGE_BYTES), "retention.ms": str(2 * 24 * 3600 * 1000)},
    ),
    TopicSpec(PHOTO_PROCESSED, PARTITIONS, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
    TopicSpec(PHOTO_READY, PARTITIONS, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
    TopicSpec(PHOTO_FAILED, PARTITIONS, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
    # Kept well past photo-uploads' retention: a replay of an upload must still find its delete.
    TopicSpec(PHOTO_DELETED, PARTITIONS, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
    # A progress signal for clients following an upload live: of no use a day later.
    TopicSpec(PHOTO_PROCESSING, PARTITIONS, {"retention.ms": str(24 * 3600 * 1000)}),
)


def changelog_topic(app_id: str, table: str) -> TopicSpec:
    """A Faust table's changelog topic, named and configured as faust declares it.

    Args:
        app_id: The Faust app id (``WORKER_APP_ID``).
        table: The table's name.
    """
    return TopicSpec(f"{app_id}-{table}-changelog", PARTITIONS, {"cleanup.policy": "compact"})


def worker_topics(app_id: str, tables: Iterable[str]) -> tuple[TopicSpec, ...]:
    """Every topic a Faust worker app uses: the pipeline's, one changelog per table, faust's leader topic.

    Args:
        app_id: The Faust app id (``WORKER_APP_ID``).
        tables: The names of the app's tables.
    """
    # faust elects a leader through this single-partition topic (faust.assignor.LeaderAssignor).
    leader = TopicSpec(f"{app_id}-__assignor-__leader", 1)
    return (*TOPICS, *(changelog_topic(app_id, table) for table in tables), leader)


def ensure_topics(
    settings: KafkaSettings, topics: tuple[TopicSpec, ...] = TOPICS, *, timeout: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet, then wait until the broker serves all of them (blocking).

    Returns:
        The names this call created (another process may have created the others).

    Raises:
        KafkaException: A topic could not be created.
        TimeoutError: The broker did not serve every topic's partitions within ``timeout`` seconds.
    """
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = set(admin.list_topics(timeout=timeout).topics)
    # With replicas, an acks=all write waits for min.insync.replicas of them: set on each topic, so a
    # cluster whose brokers default to 1 still loses no acknowledged event when a broker dies.
    durability = {"min.insync.replicas": str(settings.min_isr)} if settings.replication_factor > 1 else {}
    wanted = [
        NewTopic(spec.name, spec.partitions, settings.replication_factor, config={**durability, **spec.config})
        for spec in topics
        if spec.name not in existing
    ]
    created = []
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                created.append(name)
            except KafkaException as exc:
                # Another instance created it between our listing and our request: fine.
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    _wait_until_served(admin, [spec.name for spec in topics], timeout)
    return created


def _wait_until_served(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Return once every broker's metadata lists every topic with a leader for each partition.

    A creation (or "already exists") is acknowledged before the brokers' metadata shows the
    topic; a consumer group assigned in between would see it with no partitions. In a cluster
    each broker learns of the topic on its own, and a worker may ask any of them, so each is
    asked in turn (a client bootstrapped from that broker alone asks it first).
    """
    deadline = time.monotonic() + timeout
    served: set[int] = set()
    missing = names
    while True:
        # Asked afresh each round: a broker that died meanwhile leaves the list once it is fenced.
        brokers = admin.list_topics(timeout=timeout).brokers
        pending = {broker_id: broker for broker_id, broker in brokers.items() if broker_id not in served}
        for broker_id, broker in pending.items():
            client = AdminClient({"bootstrap.servers": f"{broker.host}:{broker.port}", "log_level": 0})
            try:
                metadata = client.list_topics(timeout=min(timeout, 5))
            except KafkaException:
                continue  # not answering right now: asked again next round
            missing = _not_served(metadata, names)
            if metadata.orig_broker_id == broker_id and not missing:
                served.add(broker_id)
        if served >= brokers.keys():
            return
        if time.monotonic() > deadline:
            late = sorted(brokers.keys() - served)
            raise TimeoutError(f"brokers {late} do not serve topics {', '.join(missing)} after {timeout:g}s")
        time.sleep(0.05)


def _not_served(metadata: ClusterMetadata, names: list[str]) -> list[str]:
    missing = []
    for name in names:
        topic = metadata.topics.get(name)
        if (
            topic is None
            or topic.error is not None
            or not topic.partitions
            or any(partition.leader < 0 or partition.error is not None for partition in topic.partitions.values())
        ):
            missing.append(name)
    return missing
