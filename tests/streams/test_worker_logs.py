"""A real worker with ``LOG_FORMAT=json``: Faust's lines and the agent's are JSON, and name the upload."""

from __future__ import annotations

import json
import uuid

import pytest

from schemas.events import FailureReason
from schemas.topics import PHOTO_FAILED
from tests.streams.uploads import photo, upload
from tests.streams.workers import OutputReader

pytestmark = pytest.mark.integration


async def test_json_logs_of_a_worker_name_the_upload(gateway, workers, local_stack, unique_name):
    photographer = unique_name("ph")
    api_key = await gateway.services.keys.create(photographer)
    reader = OutputReader(local_stack.kafka)
    workers.extra_env["LOG_FORMAT"] = "json"
    worker = workers.start()
    # A cut JPEG fails fast as corrupt, and the worker logs that failure.
    (accepted,) = await upload(gateway, api_key, ("cut.jpg", photo(7)[:5000]))
    upload_id = accepted["upload_id"]
    try:
        finished = reader.poll_until(lambda r: r.of(PHOTO_FAILED, {photographer}), timeout=120)
        assert finished, workers.logs()
        failed = reader.of(PHOTO_FAILED, {photographer})
    finally:
        reader.close()
    assert [(f.upload_id, f.reason) for f in failed] == [(uuid.UUID(upload_id), FailureReason.CORRUPT)]
    worker.stop()  # everything it had to say is in its log now

    output = worker.output()
    lines = [json.loads(line) for line in output.splitlines()]  # any line that is not JSON fails here
    assert {line["service"] for line in lines} == {"worker"}, output
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines), output
    loggers = {line["logger"] for line in lines}
    assert any(name.startswith("faust") for name in loggers), loggers  # Faust's own lines too
    about_upload = [line for line in lines if line.get("upload_id") == upload_id]
    assert any("failed: corrupt" in line["message"] for line in about_upload), output
    assert {line["photographer_id"] for line in about_upload} == {photographer}, output
