"""The local broker is Apache Kafka, and a consumer group round trip works through it."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from photostream.stack.kafka_broker import describe_cluster

pytestmark = pytest.mark.integration


def _listening_pid(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:port, read from /proc."""
    # 127.0.0.1 as /proc writes it, plain (tcp) or IPv4-mapped (tcp6, as the JVM binds).
    wanted = {f"0100007F:{port:04X}", f"0000000000000000FFFF00000100007F:{port:04X}"}
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] in wanted and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and inodes & _socket_links(proc):
            return int(proc.name)
    return None


def _socket_links(proc: Path) -> set[str]:
    """What the process's descriptors point to; one closed while they are read is skipped, not the process.

    The broker opens and closes files all the time: a descriptor gone between the listing and its
    readlink used to skip the broker's whole process, and the test found no listener.
    """
    links = set()
    try:
        descriptors = list((proc / "fd").iterdir())
    except OSError:  # the process is gone, or not ours to read
        return links
    for fd in descriptors:
        try:
            links.add(str(fd.readlink()))
        except OSError:
            continue
    return links


def test_broker_is_apache_kafka_in_kraft_mode(local_stack):
    description = describe_cluster(local_stack.kafka.bootstrap_servers)
    assert description is not None, "the broker gave no cluster description"
    # One broker, or every broker of the cluster with STACK_KAFKA_BROKERS.
    assert sorted(node.port for node in description.nodes) == [node.port for node in local_stack.stack.kafka.nodes]
    assert description.controller is not None

    pid = _listening_pid(local_stack.stack.settings.kafka_port)
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert Path(cmdline[0].decode()).name == "java"
    assert b"kafka.Kafka" in cmdline


def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30).values():
        future.result(timeout=30)


def test_produce_and_consume_with_a_consumer_group(local_stack, unique_name):
    bootstrap = local_stack.kafka.bootstrap_servers
    topic = unique_name("roundtrip")
    _create_topic(bootstrap, topic, partitions=3)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    sent = {}
    for i in range(60):
        key, value = f"photographer-{i % 5}", f"event-{i}"
        sent[value] = key
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

    group = unique_name("group")
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    consumer = Consumer(config)
    consumer.subscribe([topic])
    received: dict[str, tuple[str, int]] = {}
    try:
        for _ in range(300):
            if len(received) == len(sent):
                break
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            received[message.value().decode()] = (message.key().decode(), message.partition())
        consumer.commit(asynchronous=False)
        assert consumer.assignment(), "the group coordinator assigned no partitions"
    finally:
        consumer.close()

    assert {value: key for value, (key, _) in received.items()} == sent
    # Keyed messages: one photographer's events all land on one partition.
    partitions_by_key: dict[str, set[int]] = {}
    for key, partition in received.values():
        partitions_by_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in partitions_by_key.values())

    # The group's committed offsets reached the end of every partition.
    checker = Consumer(config)
    try:
        committed = checker.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
        total = 0
        for tp in committed:
            low, high = checker.get_watermark_offsets(tp, timeout=10)
            assert tp.offset == high
            total += high - low
        assert total == len(sent)
    finally:
        checker.close()
