from pathlib import Path

import pytest
from pydantic import ValidationError

from photostream.clients import redact_dsn, s3_client
from photostream.config import (
    ClickHouseSettings,
    GatewaySettings,
    KafkaSettings,
    S3Settings,
    StackSettings,
    clickhouse_settings,
    environment_variables,
)


def test_defaults_point_at_the_local_stack(monkeypatch):
    for name in environment_variables():
        monkeypatch.delenv(name, raising=False)
    assert KafkaSettings().bootstrap_servers == "127.0.0.1:9092"
    assert S3Settings().endpoint_url == "http://127.0.0.1:8333"
    stack = StackSettings()
    assert stack.var_dir == Path("var").resolve()
    assert clickhouse_settings(stack).dsn == f"chdb://{Path('var').resolve()}/clickhouse"


def test_environment_overrides_with_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:29092")
    monkeypatch.setenv("S3_BUCKET", "other")
    monkeypatch.setenv("STACK_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("CLICKHOUSE_DSN", "http://default:pw@ch:8123/photostream")
    assert KafkaSettings().bootstrap_servers == "broker:29092"
    assert S3Settings().bucket == "other"
    assert StackSettings().var_dir == tmp_path
    settings = clickhouse_settings()
    assert settings.dsn == "http://default:pw@ch:8123/photostream"
    assert not settings.embedded


def test_settings_are_frozen():
    settings = KafkaSettings()
    with pytest.raises(ValidationError):
        settings.bootstrap_servers = "elsewhere:9092"


def test_secret_is_not_shown_in_repr(monkeypatch):
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "very-secret-value")
    assert "very-secret-value" not in repr(S3Settings())


def test_bad_port_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("STACK_KAFKA_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="kafka_port"):
        StackSettings()


def test_a_spool_dir_that_does_not_exist_is_refused_at_start(monkeypatch, tmp_path):
    monkeypatch.setenv("GATEWAY_SPOOL_DIR", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="spool_dir"):
        GatewaySettings()
    monkeypatch.setenv("GATEWAY_SPOOL_DIR", str(tmp_path))
    assert GatewaySettings().spool_dir == tmp_path


def test_environment_variable_names():
    names = environment_variables()
    assert {
        "KAFKA_BOOTSTRAP_SERVERS",
        "S3_ENDPOINT_URL",
        "CLICKHOUSE_DSN",
        "SCHEMA_REGISTRY_URL",
        "STACK_VAR_DIR",
    } <= names


def test_clickhouse_embedded_flag():
    assert ClickHouseSettings(dsn="chdb:///data/ch").embedded
    assert not ClickHouseSettings(dsn="http://localhost:8123").embedded


def test_redact_dsn_hides_password_only():
    assert redact_dsn("http://user:secret@host:8123/db") == "http://user:***@host:8123/db"
    assert redact_dsn("chdb:///var/ch") == "chdb:///var/ch"


def test_min_insync_replicas_follows_the_replication_factor():
    assert KafkaSettings(replication_factor=1).min_isr == 1
    assert KafkaSettings(replication_factor=3).min_isr == 2
    assert KafkaSettings(replication_factor=3, min_insync_replicas=3).min_isr == 3
    with pytest.raises(ValidationError, match="cannot exceed"):
        KafkaSettings(replication_factor=1, min_insync_replicas=2)


def test_s3_timeouts_come_from_the_environment_unless_a_caller_sets_one(monkeypatch):
    monkeypatch.setenv("S3_CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("S3_READ_TIMEOUT", "90")
    config = s3_client(S3Settings()).meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.5, 90)
    probe = s3_client(S3Settings(), timeout=3).meta.config
    assert (probe.connect_timeout, probe.read_timeout) == (3, 3)
    monkeypatch.setenv("S3_READ_TIMEOUT", "0")
    with pytest.raises(ValidationError):
        S3Settings()
