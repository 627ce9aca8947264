"""`photostream keys create` and `photostream run`, as a user runs them, against the local stack."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from PIL import Image

from photostream.config import WorkerSettings
from photostream.topics import ensure_topics
from schemas.topics import PHOTO_PROCESSED
from tests.processes import free_port
from tests.streams.workers import OutputReader, start_group_at_end

pytestmark = pytest.mark.integration

PHOTOSTREAM = [sys.executable, "-m", "photostream"]


def _jpeg() -> bytes:
    """A photo of its own for each run: the same content again would be answered as existing, unpublished."""
    out = io.BytesIO()
    Image.frombytes("RGB", (32, 32), os.urandom(32 * 32 * 3)).save(out, format="JPEG")
    return out.getvalue()


def test_keys_create_prints_the_key_alone_on_the_last_line(local_stack, unique_name):
    photographer = unique_name("cli")
    result = subprocess.run(
        [*PHOTOSTREAM, "keys", "create", photographer], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"psk_[A-Za-z0-9_-]{43}", last)


def test_keys_create_refuses_a_bad_photographer_id(local_stack):
    result = subprocess.run(
        [*PHOTOSTREAM, "keys", "create", "../etc"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "invalid photographer id" in result.stderr


def test_run_serves_the_gateway_and_workers_with_a_dev_key_and_stops_on_ctrl_c(local_stack):
    # `run`'s workers use the default group, which starts at the earliest upload: past every upload
    # earlier tests published (hundreds), so this test's own is not queued behind them.
    ensure_topics(local_stack.kafka)
    start_group_at_end(local_stack.kafka, WorkerSettings().app_id)
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port)}
    proc = subprocess.Popen([*PHOTOSTREAM, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        api_key = None
        deadline = time.monotonic() + 120
        while api_key is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("api key"):
                api_key = line.rsplit(" ", 1)[-1].strip()
        assert api_key, "".join(lines)
        assert f"gateway: http://127.0.0.1:{port}\n" in lines
        assert f"dashboard: http://127.0.0.1:{port}/dashboard\n" in lines

        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        reader = OutputReader(local_stack.kafka, [PHOTO_PROCESSED])
        response = httpx.post(
            f"{url}/v1/uploads",
            files={"file": ("demo.jpg", _jpeg(), "image/jpeg")},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        upload_id = uuid.UUID(response.json()["uploads"][0]["upload_id"])
        try:
            processed = reader.poll_until(
                lambda r: any(e.upload_id == upload_id for e in r.events[PHOTO_PROCESSED]), timeout=120
            )
        finally:
            reader.close()
        assert processed, "the workers `run` started did not process the upload"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        lines.append(out)
    assert proc.returncode == 0, "".join(lines)
    # The stack was already up (the test session's), so `run` must leave it running.
    assert local_stack.stack.kafka.answers()
    assert local_stack.stack.s3.answers()
