import sys

import pytest
from pydantic import ValidationError

from photostream.config import StackSettings
from photostream.stack.kafka_broker import KafkaBroker, KafkaCluster


def _properties(tmp_path) -> dict[str, str]:
    broker = KafkaBroker(StackSettings(var_dir=tmp_path, kafka_port=19092, kafka_controller_port=19093))
    lines = broker.server_properties().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_single_kraft_node_on_loopback(tmp_path):
    props = _properties(tmp_path)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")


def test_fast_group_joins_and_single_replica_internals(tmp_path):
    props = _properties(tmp_path)
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "false"


def _cluster(tmp_path, brokers=3) -> KafkaCluster:
    return KafkaCluster(
        StackSettings(var_dir=tmp_path, kafka_brokers=brokers, kafka_port=19092, kafka_controller_port=19093)
    )


def test_a_single_node_keeps_its_names(tmp_path):
    (node,) = KafkaCluster(StackSettings(var_dir=tmp_path, kafka_port=19092, kafka_controller_port=19093)).nodes
    assert node.name == "kafka"
    assert node.process.pidfile == tmp_path / "run" / "kafka.pid"
    assert node.data_dir == tmp_path / "kafka" / "data"


def test_three_nodes_each_with_own_ports_and_folders_vote_together(tmp_path):
    cluster = _cluster(tmp_path)
    assert [node.name for node in cluster.nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [node.ports for node in cluster.nodes] == [(19092, 19093), (19094, 19095), (19096, 19097)]
    assert cluster.endpoint == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert len({node.process.pidfile for node in cluster.nodes}) == 3
    second = cluster.nodes[1]
    props = dict(line.split("=", 1) for line in second.server_properties().splitlines())
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["log.dirs"] == str(tmp_path / "kafka-2" / "data")


def test_a_cluster_survives_one_node_by_default(tmp_path):
    props = dict(line.split("=", 1) for line in _cluster(tmp_path).nodes[0].server_properties().splitlines())
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_clients_of_a_cluster_get_every_broker_and_three_replicas(tmp_path):
    kafka = _cluster(tmp_path).settings.kafka_settings()
    assert kafka.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert kafka.replication_factor == 3
    assert kafka.min_isr == 2
    assert kafka.environment() == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096",
        "KAFKA_REPLICATION_FACTOR": "3",
    }
    single = StackSettings(var_dir=tmp_path).kafka_settings()
    assert (single.bootstrap_servers, single.replication_factor, single.min_isr) == ("127.0.0.1:9092", 1, 1)


def test_overlapping_broker_ports_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="overlap"):
        StackSettings(var_dir=tmp_path, kafka_brokers=3, kafka_port=19092, kafka_controller_port=19094)


def test_down_and_status_find_a_cluster_whatever_the_setting(tmp_path):
    # A cluster of three was started here (its configs and pidfiles); the setting now says one broker.
    cluster = _cluster(tmp_path)
    for node in cluster.nodes:
        node.home.mkdir(parents=True)
        node.config_file.write_text(node.server_properties())
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", str(cluster.nodes[0].config_file)]
    cluster.nodes[0].process.start(sleeper, cwd=tmp_path)
    try:
        single = KafkaCluster(StackSettings(var_dir=tmp_path, kafka_port=19092, kafka_controller_port=19093))
        assert [node.name for node in single.strays()] == ["kafka-1", "kafka-2", "kafka-3"]
        assert cluster.strays() == ()
    finally:
        assert cluster.nodes[0].process.stop()
    assert single.strays() == ()
