"""The pipeline's Kafka topics, created by the project itself at start-up, idempotently.

All are keyed by photographer id, so one photographer's events stay in order on one
partition. Partition counts bound how many workers can share the load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from photostream.config import KafkaSettings
from schemas.topics import PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_READY, PHOTO_UPLOADS, PHOTO_VARIANTS


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
)


def ensure_topics(
    settings: KafkaSettings, topics: tuple[TopicSpec, ...] = TOPICS, *, timeout: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created (blocking)."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(spec.name, spec.partitions, settings.replication_factor, config=spec.config)
        for spec in topics
        if spec.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            # Another instance created it between our listing and our request: fine.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
