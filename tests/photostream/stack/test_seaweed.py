"""The local S3 server's own upkeep, against the running SeaweedFS."""

from __future__ import annotations

import os
import time
import uuid

from click.testing import CliRunner

from photostream.cli import main
from photostream.clients import s3_client

OBJECT_BYTES = 24 * 1024 * 1024
# The filer hands a deleted object's chunks to the volume server in the background, within a second or so.
DELETES_LAND_SECONDS = 30.0


def _store_and_delete(local_stack, count: int) -> None:
    client = s3_client(local_stack.s3)
    keys = [f"test-vacuum/{uuid.uuid4().hex}" for _ in range(count)]
    for key in keys:
        client.put_object(Bucket=local_stack.s3.bucket, Key=key, Body=os.urandom(OBJECT_BYTES))
    for key in keys:
        client.delete_object(Bucket=local_stack.s3.bucket, Key=key)


def test_vacuum_gives_the_disk_back_the_space_of_deleted_objects(local_stack):
    seaweed = local_stack.stack.s3
    _store_and_delete(local_stack, 2)
    with_garbage = seaweed.volume_bytes()

    freed = 0
    deadline = time.monotonic() + DELETES_LAND_SECONDS
    while freed < 0.99 * 2 * OBJECT_BYTES and time.monotonic() < deadline:
        freed += seaweed.vacuum()
        time.sleep(0.2)

    # Less a few kB: the deletes themselves append small records to the volume.
    reclaimed = with_garbage - seaweed.volume_bytes()
    assert reclaimed >= 0.99 * 2 * OBJECT_BYTES, f"only {reclaimed} bytes of {2 * OBJECT_BYTES} came back"
    assert abs(freed - reclaimed) < 0.01 * OBJECT_BYTES, f"vacuum said it freed {freed} bytes, not {reclaimed}"


def test_stack_vacuum_says_how_much_it_freed(local_stack):
    _store_and_delete(local_stack, 1)

    freed_mb = 0
    deadline = time.monotonic() + DELETES_LAND_SECONDS
    while freed_mb < OBJECT_BYTES // 1_000_000 and time.monotonic() < deadline:
        result = CliRunner().invoke(main, ["stack", "vacuum"])
        assert result.exit_code == 0, result.output
        freed_mb += int(result.output.split()[1])

    assert freed_mb >= OBJECT_BYTES // 1_000_000, result.output
