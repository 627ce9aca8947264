"""`photostream gateway` as its own process: it serves, and bounds what one request may hold."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.processes import free_port, start_service

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(local_stack, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.bootstrap_servers,
        "S3_ENDPOINT_URL": local_stack.s3.endpoint_url,
        "GATEWAY_PORT": str(port),
    }
    process = start_service(["gateway"], env, tmp_path / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while "gateway listening" not in process.output():
        assert process.process.poll() is None, process.output()
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.2)
    yield url, process
    process.stop()


def test_oversized_header_lines_are_refused(gateway):
    url, process = gateway
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    huge = httpx.get(f"{url}/healthz", headers={"X-Padding": "a" * 9000}, timeout=10)
    assert huge.status_code in {400, 431}
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # and it keeps serving
    assert "Failed to create request handler" not in process.output()  # the limits were really applied
