"""`photostream gateway` as its own process: it serves, and bounds what one request may hold."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid

import httpx
import pytest

from producers.dashboard import COOKIE
from producers.keys import create_keys
from tests.gateway_client import auth
from tests.processes import free_port, start_service
from tests.streams.imaging.photos import make_photo

pytestmark = pytest.mark.integration


DASHBOARD_TOKEN = "SECRET-dashboard-7f3a9c"  # noqa: S105 - a test token


def gateway_env(local_stack, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": local_stack.kafka.bootstrap_servers,
        "S3_ENDPOINT_URL": local_stack.s3.endpoint_url,
        "GATEWAY_PORT": str(port),
        "GATEWAY_DASHBOARD_TOKEN": DASHBOARD_TOKEN,
        # Nobody answers there: the dashboard's data requests fail fast with 503, still logged.
        "CLICKHOUSE_QUERY_URL": f"http://127.0.0.1:{free_port()}",
    }


def start_gateway(local_stack, log_path, **extra_env: str):
    port = free_port()
    process = start_service(["gateway"], {**gateway_env(local_stack, port), **extra_env}, log_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while "gateway listening" not in process.output():
        assert process.process.poll() is None, process.output()
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.2)
    return url, process


@pytest.fixture
def gateway(local_stack, tmp_path):
    url, process = start_gateway(local_stack, tmp_path / "gateway.log")
    yield url, process
    process.stop()


def test_a_port_already_taken_is_a_clear_error_and_never_listening(local_stack, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_service(["gateway"], gateway_env(local_stack, port), tmp_path / "gateway.log")
        try:
            returncode = process.process.wait(60)
        finally:
            process.stop()
    output = process.output()
    assert returncode != 0, output
    assert f"gateway cannot listen on 127.0.0.1:{port}" in output, output
    assert "address already in use" in output.lower(), output
    assert "listening on" not in output, output


def test_the_dashboard_token_never_reaches_the_log(gateway):
    url, process = gateway
    token = DASHBOARD_TOKEN
    page = httpx.get(f"{url}/dashboard?token={token}", timeout=10)
    assert page.status_code == 200
    assert page.cookies.get(COOKIE)  # the browser's later requests carry this, not the token
    data = httpx.get(f"{url}/dashboard/data", params={"minutes": 5, "token": token}, timeout=30)
    assert data.status_code in {200, 503}  # authorised; the analytics store may not answer here
    referer = {"Referer": f"{url}/dashboard?token={token}"}
    assert httpx.get(f"{url}/dashboard/data?token=wrong-{token}", headers=referer, timeout=10).status_code == 404
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/dashboard", headers=bearer, timeout=10).status_code == 200
    api_key = "psk_" + "k" * 43
    assert httpx.get(f"{url}/v1/uploads/{uuid.uuid4()}?api_key={api_key}", timeout=10).status_code == 401
    deadline = time.monotonic() + 10
    while process.output().count("aiohttp.access") < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.stop()  # everything it had to say is in the log now
    output = process.output()
    assert output.count("aiohttp.access") >= 5, output  # the access log is on: the requests were logged
    assert "token=REDACTED" in output, output
    assert "SECRET" not in output, output
    assert api_key not in output, output


def test_oversized_header_lines_are_refused(gateway):
    url, process = gateway
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    huge = httpx.get(f"{url}/healthz", headers={"X-Padding": "a" * 9000}, timeout=10)
    assert huge.status_code in {400, 431}
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # and it keeps serving
    assert "Failed to create request handler" not in process.output()  # the limits were really applied


def test_json_logs_name_the_service_and_the_upload(local_stack, tmp_path, unique_name):
    photographer = unique_name("ph")
    api_key = asyncio.run(create_keys(local_stack.s3, [photographer]))[photographer]
    url, process = start_gateway(local_stack, tmp_path / "gateway.log", LOG_FORMAT="json")
    try:
        files = {"file": ("a.jpg", make_photo(64, 48, seed=13), "image/jpeg")}
        accepted = httpx.post(f"{url}/v1/uploads", files=files, headers=auth(api_key), timeout=30)
        assert accepted.status_code == 202, accepted.text
        again = httpx.post(f"{url}/v1/uploads", files=files, headers=auth(api_key), timeout=30)
        assert again.json()["uploads"][0]["existing"] is True, again.text
        assert httpx.get(f"{url}/dashboard?token={DASHBOARD_TOKEN}", timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while process.output().count("aiohttp.access") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.stop()
    upload_id = accepted.json()["uploads"][0]["upload_id"]
    output = process.output()
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON: any other fails here
    assert {line["service"] for line in lines} == {"gateway"}, output
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines), output
    assert any(line["message"].startswith("gateway listening on") for line in lines), output
    about_upload = [line for line in lines if line.get("upload_id") == upload_id]
    messages = [line["message"] for line in about_upload]
    assert any(message.startswith("accepted a.jpg") for message in messages), output
    assert any("uploaded before" in message for message in messages), output
    assert {line["photographer_id"] for line in about_upload} == {photographer}
    access = [line["message"] for line in lines if line["logger"] == "aiohttp.access"]
    assert len(access) >= 3, output
    assert any("token=REDACTED" in message for message in access), output
    assert "SECRET" not in output, output
    assert api_key not in output, output
