"""Peak memory of one worker with 8 large originals in flight, beside the same with 8 small ones.

Puts 8 originals of about 45 MB (75-megapixel photo-like JPEGs, padded with an APP15 segment up
to the size) and 8 of about 5 MB (12 megapixels, padded the same way) in S3. For each size it
starts one real ``photostream worker`` with ``WORKER_IN_FLIGHT=8``, publishes the 8 uploads for
one photographer at once, waits for the 8 ``ImageProcessed``, and samples the worker's resident
memory meanwhile (VmRSS every 20 ms, and VmHWM at the end). A fresh worker per size, so each
peak is its own. The worker holds a bounded amount of original bytes (large ones are spilled to a
temp file while they are processed), so the two peaks should be close: target ratio <= 1.3.

    make stack-up && .venv/bin/python bench/worker_memory.py

Writes bench/results/worker_memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import struct
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.worker_burst import publish, store_originals, wait_until_ready
from photostream.config import KafkaSettings, S3Settings
from photostream.samples import sample_photo
from photostream.topics import ensure_topics
from schemas.topics import PHOTO_FAILED, PHOTO_PROCESSED, PHOTO_UPLOADS
from tests.streams.workers import OutputReader, WorkerGroup, delete_group_topics, start_group_at_end

MB = 1_000_000
IN_FLIGHT = 8
RESULTS = Path(__file__).resolve().parent / "results" / "worker_memory.json"
# (label, stored size, megabytes): a 75 MP camera JPEG is 30-45 MB; a 12 MP one 3-5 MB.
SIZES = (("45 MB", (10_000, 7_500), 45), ("5 MB", (4_000, 3_000), 5))
_APP15 = 0xFFEF
_SEGMENT_MAX = 65_533  # a JPEG segment's payload: its 16-bit length counts itself


def pad_jpeg(data: bytes, size: int, seed: int) -> bytes:
    """``data`` with APP15 segments of seeded random bytes after its own APPn segments, ``size`` bytes long.

    Decoders skip APP15; the pixels and EXIF stay as they were, and each seed gives distinct bytes
    (a distinct SHA-256).
    """
    offset = 2  # after SOI
    while data[offset] == 0xFF and 0xE0 <= data[offset + 1] <= 0xEF:
        offset += 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
    missing = size - len(data)
    if missing < 4:
        return data
    rng = np.random.default_rng(seed)
    segments = []
    while missing >= 4:
        payload = min(_SEGMENT_MAX, missing - 4)
        segments.append(struct.pack(">HH", _APP15, payload + 2) + rng.bytes(payload))
        missing -= payload + 4
    return data[:offset] + b"".join(segments) + data[offset:]


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


class RssSampler:
    """Samples a process's VmRSS on a thread until stopped; ``peak_mb`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, vm_kb(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        """The largest VmRSS seen, in MiB."""
        return self.peak_kb / 1024


def wait_for_kafka(kafka: KafkaSettings, timeout: float = 300) -> None:
    """Wait until the broker answers (other test runs may be restarting the shared local stack)."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers}, logger=logging.getLogger("bench.kafka"))
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(PHOTO_UPLOADS, timeout=5)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def measure(kafka: KafkaSettings, s3: S3Settings, photos: list[bytes], keys: list[str], workdir: Path) -> dict:
    """One fresh worker, the uploads at once; its idle and peak resident memory and the time taken."""
    env = {"WORKER_IN_FLIGHT": str(IN_FLIGHT)}
    group = WorkerGroup(kafka, s3, f"bench-memory-{uuid.uuid4().hex[:8]}", workdir, env)
    wait_for_kafka(kafka)
    start_group_at_end(kafka, group.app_id)
    worker = group.start()
    photographer = f"bench-{uuid.uuid4().hex[:8]}"
    reader = OutputReader(kafka, [PHOTO_PROCESSED, PHOTO_FAILED])
    try:
        wait_until_ready(worker)
        pid = worker.process.pid
        idle = vm_kb(pid, "VmRSS") / 1024
        started = time.monotonic()
        with RssSampler(pid) as sampler:
            asyncio.run(publish(kafka, s3, photographer, photos, keys))

            def finished(r: OutputReader) -> bool:
                return len(r.of(PHOTO_PROCESSED, {photographer})) + len(r.of(PHOTO_FAILED, {photographer})) >= len(
                    photos
                )

            done = reader.poll_until(finished, timeout=1800)
        elapsed = time.monotonic() - started
        hwm = vm_kb(pid, "VmHWM") / 1024
        failed = reader.of(PHOTO_FAILED, {photographer})
        if not done or failed:
            details = [f"{f.reason}: {f.detail}" for f in failed]  # type: ignore[attr-defined]
            raise RuntimeError(f"not every photo was processed {details}\n{worker.output()[-3000:]}")
    finally:
        reader.close()
        group.stop_all()
        delete_group_topics(kafka, group.app_id)
    return {"idle_rss_mb": round(idle, 1), "peak_rss_mb": round(max(sampler.peak_mb, hwm), 1), "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. before, after)")
    args = parser.parse_args()
    kafka, s3 = KafkaSettings(), S3Settings()
    ensure_topics(kafka)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for label, (width, height), megabytes in SIZES:
            print(f"making {IN_FLIGHT} originals of {megabytes} MB ({width}x{height})...", flush=True)
            base = sample_photo(1, size=(width, height), quality=97 if megabytes > 10 else 95)
            photos = [pad_jpeg(base, megabytes * MB, seed) for seed in range(IN_FLIGHT)]
            keys = asyncio.run(store_originals(s3, photos, f"bench/memory/{uuid.uuid4().hex[:8]}"))
            result = measure(kafka, s3, photos, keys, Path(workdir))
            result.update(
                originals=IN_FLIGHT,
                megabytes=round(len(photos[0]) / MB, 1),
                unpadded_megabytes=round(len(base) / MB, 1),
                megapixels=round(width * height / 1e6, 1),
            )
            results[label] = result
            print(
                f"  {IN_FLIGHT} x {megabytes} MB in flight: peak RSS {result['peak_rss_mb']:.0f} MB "
                f"(idle {result['idle_rss_mb']:.0f} MB), {result['seconds']:.1f} s",
                flush=True,
            )
            del photos, base
    ratio = results["45 MB"]["peak_rss_mb"] / results["5 MB"]["peak_rss_mb"]
    print("\n| originals in flight | peak RSS (MB) |\n|---|---|")
    for label, result in results.items():
        print(f"| {IN_FLIGHT} x {label} | {result['peak_rss_mb']:.0f} |")
    print(f"\npeak RSS ratio 45 MB / 5 MB originals: {ratio:.2f} (target <= 1.3)")
    RESULTS.parent.mkdir(exist_ok=True)
    record = {
        "measured_at": datetime.now(UTC).isoformat(),
        "label": args.label,
        "machine": {"cores": os.cpu_count(), "arch": platform.machine()},
        "in_flight": IN_FLIGHT,
        "runs": results,
        "ratio": round(ratio, 3),
        "target": 1.3,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
