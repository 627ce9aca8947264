"""How soon a client following an upload over SSE hears that it is ready.

A gateway process on the running stack; ``uploads`` photos are POSTed, a Server-Sent Events
client follows each, then for each an ``ImageProcessed`` and, ``pace`` seconds later, an
``ImageReady`` are written to their topics (as the worker and the S3 sink write them, so none
needs to run). The latency is from Kafka's acknowledgement of the ``ImageReady`` to the
``ready`` event at the client. Goal: p95 < 250 ms.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.pipeline_bench import _session, _start_gateway
from photostream.config import KafkaSettings, S3Settings
from photostream.kafka_producer import EventProducer
from photostream.topics import ensure_topics
from producers.keys import create_keys
from schemas.events import ImageMetadata, ImageProcessed, ImageReady, StoredVariant
from schemas.serde import EventSerde
from schemas.topics import PHOTO_PROCESSED, PHOTO_READY

GOAL_P95_SECONDS = 0.25


async def _follow(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    upload_id: str,
    received: dict[str, datetime],
    heard: dict[str, float],
) -> None:
    """Follow one upload's stages: note when it was received (its ``at``), and the moment ``ready`` arrives."""
    headers = {"Authorization": f"Bearer {key}"}
    async with session.get(f"{url}/v1/uploads/{upload_id}/events", headers=headers) as response:
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            stage = json.loads(line[5:])
            if stage["stage"] == "received":
                received[upload_id] = datetime.fromisoformat(stage["at"])
            elif stage["stage"] == "ready":
                heard[upload_id] = time.monotonic()


def _processed(upload_id: str, photographer: str, received_at: datetime) -> ImageProcessed:
    now = datetime.now(UTC)
    return ImageProcessed(
        upload_id=uuid.UUID(upload_id), photographer_id=photographer, sha256="0" * 64,
        metadata=ImageMetadata(width=1, height=1), phash="0" * 16, received_at=received_at,
        processing_started_at=now, processed_at=now, decode_ms=0, metadata_ms=0, hash_ms=0, render_ms=0,
    )  # fmt: skip


def _ready(upload_id: str, photographer: str, received_at: datetime) -> ImageReady:
    now = datetime.now(UTC)
    variant = StoredVariant(
        variant="web", format="webp", content_type="image/webp", width=1, height=1, bytes=1,
        key=f"variants/{photographer}/{upload_id}/web.webp", sha256="0" * 64,
    )  # fmt: skip
    return ImageReady(
        upload_id=uuid.UUID(upload_id), photographer_id=photographer, event_id=uuid.uuid4().hex,
        variants=(variant,), received_at=received_at, ready_at=now,
    )  # fmt: skip


async def _measure(url: str, key: str, photographer: str, paths: list[Path], uploads: int, pace: float) -> list[float]:
    kafka = KafkaSettings()
    upload_ids = []
    async with _session(uploads) as session:
        for index in range(uploads):
            form = aiohttp.FormData()
            body = paths[index % len(paths)].read_bytes() + uuid.uuid4().bytes
            form.add_field("file", body, filename="photo.jpg", content_type="image/jpeg")
            async with session.post(f"{url}/v1/uploads", data=form, headers={"Authorization": f"Bearer {key}"}) as r:
                upload_ids.append((await r.json())["uploads"][0]["upload_id"])
        # The events must carry the upload's own received_at, as the worker's do: the gateway takes
        # events of another received_at for those of an earlier upload of the same photo.
        received: dict[str, datetime] = {}
        heard: dict[str, float] = {}
        followers = [
            asyncio.create_task(_follow(session, url, key, upload_id, received, heard)) for upload_id in upload_ids
        ]
        await asyncio.sleep(2)  # every follower has its stream open and has read the past stages
        producer, serde = EventProducer(kafka, delivery_timeout=15), EventSerde()
        written: dict[str, float] = {}
        try:
            for upload_id in upload_ids:
                processed = serde.encode(_processed(upload_id, photographer, received[upload_id]), PHOTO_PROCESSED)
                await producer.send(PHOTO_PROCESSED, key=photographer.encode(), value=processed)
                await asyncio.sleep(pace)
                value = serde.encode(_ready(upload_id, photographer, received[upload_id]), PHOTO_READY)
                await producer.send(PHOTO_READY, key=photographer.encode(), value=value)
                written[upload_id] = time.monotonic()
            async with asyncio.timeout(30):
                await asyncio.gather(*followers)
        finally:
            producer.close()
    return [heard[upload_id] - written[upload_id] for upload_id in upload_ids]


def measure(paths: list[Path], *, uploads: int = 40, pace: float = 0.1) -> dict:
    """The latency from ImageReady on Kafka to the SSE ``ready`` event at the client: p50, p95, max."""
    kafka, s3 = KafkaSettings(), S3Settings()
    ensure_topics(kafka)
    photographer = f"bench-live-{uuid.uuid4().hex[:8]}"
    key = asyncio.run(create_keys(s3, [photographer]))[photographer]
    with tempfile.TemporaryDirectory() as directory:
        gateway, url = _start_gateway(kafka, s3, Path(directory), {})
        try:
            latencies = asyncio.run(_measure(url, key, photographer, paths, uploads, pace))
        finally:
            gateway.stop()
    ordered = sorted(latencies)
    return {
        "uploads": uploads,
        "p50_seconds": statistics.median(ordered),
        "p95_seconds": ordered[max(0, round(0.95 * len(ordered)) - 1)],
        "max_seconds": ordered[-1],
    }


def report(result: dict) -> list[str]:
    """The measurement as markdown, with its goal."""
    met = "yes" if result["p95_seconds"] < GOAL_P95_SECONDS else "no"
    return [
        f"| ImageReady on Kafka → SSE `ready` ({result['uploads']} uploads) | p50 | p95 | max | goal | met |",
        "|---|---|---|---|---|---|",
        f"| | {result['p50_seconds'] * 1000:.0f} ms | {result['p95_seconds'] * 1000:.0f} ms "
        f"| {result['max_seconds'] * 1000:.0f} ms | p95 < {GOAL_P95_SECONDS * 1000:.0f} ms | {met} |",
    ]


def main() -> None:
    """Run it alone on the running stack: ``python -m bench.live_latency``."""
    from bench.photoset import photo_set

    print("\n".join(report(measure(list(photo_set().paths)))))


if __name__ == "__main__":
    main()
