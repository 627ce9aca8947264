"""`photostream sinks` with ``LOG_FORMAT=json`` writes nothing but JSON lines."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_json_logs_of_the_sinks(sinks):
    sinks.extra_env["LOG_FORMAT"] = "json"
    process = sinks.start()  # waits for "sinks running", said as a JSON line too
    process.stop()
    output = process.output()
    lines = [json.loads(line) for line in output.splitlines()]  # any line that is not JSON fails here
    assert {line["service"] for line in lines} == {"sinks"}, output
    messages = [line["message"] for line in lines]
    assert "sinks running" in messages, output
    assert any(message.startswith("ClickHouse schema migrated") for message in messages), output
