"""The worker creates faust's topics itself, named and configured exactly as faust declares them."""

from __future__ import annotations

from photostream.config import KafkaSettings, WorkerSettings
from photostream.topics import PARTITIONS, TOPICS, worker_topics
from schemas.topics import PHOTO_UPLOADS
from streams.app import DUPLICATES_TABLE, create_app


def test_worker_topics_are_the_ones_faust_declares():
    app = create_app(WorkerSettings(app_id="probe"), KafkaSettings(), handler=None, serde=None)  # type: ignore[arg-type]
    specs = {spec.name: spec for spec in worker_topics("probe", [DUPLICATES_TABLE])}
    assert all(specs[topic.name] == topic for topic in TOPICS)

    changelog = app.tables[DUPLICATES_TABLE].changelog_topic
    spec = specs[changelog.get_topic_name()]
    assert spec.name == "probe-duplicates-changelog"
    # Faust stops a worker whose changelog has fewer partitions than the table's source topic.
    assert spec.partitions == changelog.partitions == specs[PHOTO_UPLOADS].partitions == PARTITIONS
    assert changelog.compacting
    assert not changelog.deleting
    assert not changelog.retention
    assert spec.config == {"cleanup.policy": "compact"}

    leader = app._leader_assignor._leader_topic
    assert specs[leader.get_topic_name()].partitions == leader.partitions == 1
    assert specs[leader.get_topic_name()].config == {}
    assert len(specs) == len(TOPICS) + 2
