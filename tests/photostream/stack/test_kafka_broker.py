from photostream.config import StackSettings
from photostream.stack.kafka_broker import KafkaBroker


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
