"""`photostream stack ... --brokers N` with nothing running: the report names every broker."""

from click.testing import CliRunner

from photostream.cli import main


def test_status_of_a_three_broker_stack_lists_each_broker(tmp_path, monkeypatch):
    monkeypatch.setenv("STACK_VAR_DIR", str(tmp_path))
    for name, port in {"STACK_KAFKA_PORT": 1092, "STACK_KAFKA_CONTROLLER_PORT": 1093, "STACK_S3_PORT": 1333}.items():
        monkeypatch.setenv(name, str(port))  # privileged ports: nothing of ours listens there
    result = CliRunner().invoke(main, ["stack", "status", "--brokers", "3"])
    assert result.exit_code == 3, result.output
    lines = [line.split()[:3] for line in result.output.splitlines()]
    assert lines[:3] == [
        ["kafka-1", "down", "127.0.0.1:1092"],
        ["kafka-2", "down", "127.0.0.1:1094"],
        ["kafka-3", "down", "127.0.0.1:1096"],
    ]


def test_overlapping_ports_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("STACK_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("STACK_KAFKA_CONTROLLER_PORT", "9094")
    result = CliRunner().invoke(main, ["stack", "up", "--brokers", "3"])
    assert result.exit_code == 1
    assert "overlap" in result.output
