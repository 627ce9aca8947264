"""Does a burst from ONE photographer (one partition) use every core? Worker throughput by window.

Puts N sample photos (12 megapixels by default) in S3, then for each window size starts one
real `photostream worker` with ``WORKER_IN_FLIGHT`` set to it, publishes N ``UploadReceived``
events for a single photographer, and times first event to last ``ImageProcessed``. It
prints photos per second, the worker's CPU use (of all cores) and the ratio to a window of 1
(one image at a time: libvips' own threads only). Same photos, same machine, one run.

    make stack-up && .venv/bin/python bench/worker_burst.py [--photos 40] [--windows 1,2,6]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photostream.config import KafkaSettings, S3Settings, SinksSettings
from photostream.kafka_producer import EventProducer
from photostream.objectstore import ObjectStore
from photostream.samples import sample_photo
from photostream.topics import ensure_topics
from schemas.events import UploadReceived
from schemas.serde import EventSerde
from schemas.topics import PHOTO_PROCESSED, PHOTO_UPLOADS
from tests.processes import ServiceProcess
from tests.streams.workers import OutputReader, WorkerGroup, delete_group_topics, start_group_at_end

CORES = os.cpu_count() or 1


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def store_originals(s3: S3Settings, photos: list[bytes], prefix: str) -> list[str]:
    """Put each photo under ``prefix``; their keys, in order."""
    store = ObjectStore(s3)
    try:
        keys = [f"{prefix}/{index}.jpg" for index in range(len(photos))]
        await asyncio.gather(*(store.put(k, p, content_type="image/jpeg") for k, p in zip(keys, photos, strict=True)))
        return keys
    finally:
        await store.close()


def wait_until_ready(worker: ServiceProcess, timeout: float = 120) -> None:
    """Return once the worker process says Faust is ready; raise if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while "Worker ready" not in worker.output():
        if time.monotonic() > deadline or worker.process.poll() is not None:
            raise RuntimeError(f"worker did not start:\n{worker.output()[-3000:]}")
        time.sleep(0.2)


async def publish(
    kafka: KafkaSettings, s3: S3Settings, photographer: str, photos: list[bytes], keys: list[str]
) -> None:
    producer = EventProducer(kafka, delivery_timeout=SinksSettings().kafka_delivery_timeout)
    serde, now = EventSerde(), datetime.now(UTC)
    try:
        for data, key in zip(photos, keys, strict=True):
            event = UploadReceived(
                upload_id=uuid.uuid4(),
                photographer_id=photographer,
                filename=key.rsplit("/", 1)[-1],
                content_type="image/jpeg",
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                bucket=s3.bucket,
                original_key=key,
                received_at=now,
                stored_at=now,
                published_at=now,
                gateway_id="bench",
            )
            await producer.send(PHOTO_UPLOADS, key=photographer.encode(), value=serde.encode(event, PHOTO_UPLOADS))
    finally:
        producer.close()


def run_window(
    kafka: KafkaSettings, s3: S3Settings, window: int, photos: list[bytes], keys: list[str], workdir: Path
) -> dict:
    group = WorkerGroup(kafka, s3, f"bench-burst-{uuid.uuid4().hex[:8]}", workdir, {"WORKER_IN_FLIGHT": str(window)})
    start_group_at_end(kafka, group.app_id)
    worker = group.start()
    photographer = f"bench-{uuid.uuid4().hex[:8]}"
    reader = OutputReader(kafka, [PHOTO_PROCESSED])
    try:
        wait_until_ready(worker)
        cpu_before, started = cpu_seconds(worker.process.pid), time.monotonic()
        asyncio.run(publish(kafka, s3, photographer, photos, keys))
        done = reader.poll_until(lambda r: len(r.of(PHOTO_PROCESSED, {photographer})) >= len(photos), timeout=1800)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(worker.process.pid) - cpu_before
        if not done:
            raise RuntimeError(f"window {window}: not every photo was processed\n{worker.output()[-3000:]}")
    finally:
        reader.close()
        group.stop_all()
        delete_group_topics(kafka, group.app_id)
    return {"window": window, "seconds": elapsed, "rate": len(photos) / elapsed, "cpu": cpu / elapsed / CORES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--size", default="4000x3000", help="width x height of the sample photos")
    parser.add_argument("--windows", default=f"1,{2 * CORES + 2}", help="WORKER_IN_FLIGHT values to compare")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    kafka, s3 = KafkaSettings(), S3Settings()
    ensure_topics(kafka)
    print(f"making {args.photos} photos of {width}x{height}...", flush=True)
    photos = [sample_photo(seed, size=(width, height), quality=95) for seed in range(args.photos)]
    print(f"average {sum(map(len, photos)) / len(photos) / 1e6:.1f} MB; {CORES} cores", flush=True)
    keys = asyncio.run(store_originals(s3, photos, f"bench/burst/{uuid.uuid4().hex[:8]}"))
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for window in (int(w) for w in args.windows.split(",")):
            results.append(run_window(kafka, s3, window, photos, keys, Path(workdir)))
            print(f"  window {window}: {results[-1]['rate']:.2f} photos/s", flush=True)
    base = results[0]["rate"]
    print("\n| WORKER_IN_FLIGHT | photos/s | CPU use (all cores) | vs first |")
    print("|---|---|---|---|")
    for result in results:
        print(f"| {result['window']} | {result['rate']:.2f} | {result['cpu']:.0%} | {result['rate'] / base:.2f}x |")


if __name__ == "__main__":
    main()
