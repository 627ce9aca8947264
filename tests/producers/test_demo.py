"""`photostream demo` against a running pipeline: sample photos in, the throughput report out."""

from __future__ import annotations

import asyncio
import sys

import pytest

from producers.demo import PHOTOGRAPHERS, share_of

pytestmark = pytest.mark.integration


def test_the_first_photographer_sends_half():
    for total in (3, 7, 24, 25):
        shares = [share_of(i, total) for i in range(len(PHOTOGRAPHERS))]
        assert sum(shares) == total
        assert shares[0] == (total + 1) // 2


@pytest.mark.timeout(400)
async def test_demo_uploads_samples_and_prints_the_report(make_gateway, workers, sinks):
    gateway = await make_gateway()
    sinks.start()
    workers.start()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "photostream", "demo", "--photos", "6", "--size", "800x600",
        "--url", str(gateway.make_url("/")),
        env={**sinks.env, "COLUMNS": "200"}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    stdout = out.decode()
    assert process.returncode == 0, stdout + err.decode()
    assert "6 files" in stdout
    assert "6 accepted" in stdout
    assert "6 completed, 0 failed, 0 still queued" in stdout
    assert "Throughput per photographer and minute" in stdout
    assert "Latency per stage" in stdout
    for photographer in PHOTOGRAPHERS:
        assert photographer in stdout
