"""The gateway against raw S3, and the whole pipeline end to end, on the running local stack."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.cpu_share import CpuShare
from photostream.config import KafkaSettings, S3Settings
from photostream.topics import ensure_topics
from producers.keys import create_keys
from schemas.events import ImageProcessed, ImageReady
from schemas.topics import PHOTO_PROCESSED, PHOTO_READY
from tests.pipeline import Sinks
from tests.processes import ServiceProcess, free_port, start_service
from tests.streams.workers import OutputReader, WorkerGroup, delete_group_topics, start_group_at_end


def _start_gateway(
    kafka: KafkaSettings, s3: S3Settings, directory: Path, extra: dict[str, str]
) -> tuple[ServiceProcess, str]:
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "S3_ENDPOINT_URL": s3.endpoint_url,
           "GATEWAY_PORT": str(port), "GATEWAY_DAILY_QUOTA": "1000000", **extra}  # fmt: skip
    gateway = start_service(["gateway"], env, directory / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while "gateway listening" not in gateway.output():
        if gateway.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gateway did not start:\n{gateway.output()[-3000:]}")
        time.sleep(0.2)
    return gateway, url


async def _post_one(session: aiohttp.ClientSession, url: str, key: str, body: bytes) -> None:
    """One upload of one photo; anything but 202 is an error."""
    form = aiohttp.FormData()
    form.add_field("file", body, filename="photo.jpg", content_type="image/jpeg")
    async with session.post(f"{url}/v1/uploads", data=form, headers={"Authorization": f"Bearer {key}"}) as response:
        await response.read()
        if response.status != 202:
            raise RuntimeError(f"upload answered {response.status}")


def _session(clients: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients), timeout=aiohttp.ClientTimeout(total=600)
    )


async def _post_all(url: str, keys: dict[str, str], bodies: list[tuple[str, bytes]], clients: int) -> list[float]:
    """POST every (photographer, bytes) with ``clients`` at once; returns each 202's finish time."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    finished: list[float] = []

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            owner, body = queue.get_nowait()
            await _post_one(session, url, keys[owner], body)
            finished.append(time.monotonic())

    async with _session(clients) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return finished


@dataclass
class RunningPipeline:
    """Gateway, workers and sinks started for one measurement, with a reader of their output."""

    url: str
    keys: dict[str, str]
    names: dict[str, str]
    run: str
    reader: OutputReader
    logs: Callable[[], str]

    async def post(self, bodies: list[tuple[str, bytes]], clients: int) -> list[float]:
        """Upload (photographer name, bytes) pairs with ``clients`` at once."""
        return await _post_all(self.url, self.keys, bodies, clients)

    def ready_events(self, count: int, timeout: float) -> dict[uuid.UUID, ImageReady]:
        """Wait until ``count`` images of this run are ready; their ImageReady by upload id."""
        who = set(self.names.values())
        if not self.reader.poll_until(lambda r: len({e.upload_id for e in r.of(PHOTO_READY, who)}) >= count, timeout):
            raise RuntimeError("not every photo became ready:\n" + self.logs())
        return {e.upload_id: e for e in self.reader.of(PHOTO_READY, who) if isinstance(e, ImageReady)}

    def processed_events(self) -> dict[uuid.UUID, ImageProcessed]:
        """The ImageProcessed events of this run read so far, by upload id."""
        who = set(self.names.values())
        return {e.upload_id: e for e in self.reader.of(PHOTO_PROCESSED, who) if isinstance(e, ImageProcessed)}


@contextmanager
def running_pipeline(owners: list[str], *, workers: int = 2) -> Iterator[RunningPipeline]:
    """Start sinks, ``workers`` workers and a gateway on the running stack; stop them all afterwards."""
    kafka, s3 = KafkaSettings(), S3Settings()
    ensure_topics(kafka)
    run = uuid.uuid4().hex[:8]
    names = {owner: f"{owner}-{run}" for owner in sorted(set(owners))}
    keys = asyncio.run(create_keys(s3, list(names.values())))
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        sinks = Sinks(kafka, s3, folder)
        sinks.skip_history()
        group = WorkerGroup(kafka, s3, f"bench-processing-{run}", folder)
        start_group_at_end(kafka, group.app_id)
        reader = OutputReader(kafka, [PHOTO_PROCESSED, PHOTO_READY])
        gateway = None
        try:
            sinks.start()
            for _ in range(workers):
                group.start()
            time.sleep(8)  # let the workers join and get their partitions before the clock starts
            gateway, url = _start_gateway(kafka, s3, folder, sinks.reader_env)
            yield RunningPipeline(url, keys, names, run, reader, lambda: sinks.logs() + group.logs())
        finally:
            reader.close()
            if gateway is not None:
                gateway.stop()
            group.stop_all()
            sinks.stop()
            delete_group_topics(kafka, group.app_id)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def idle_latency(paths: list[Path], owners: list[str], *, photos: int = 12, workers: int = 2) -> dict:
    """Upload received to ImageReady, one photo at a time on an idle pipeline, split by stage.

    Each photo is sent only after the previous one is ready, so nothing queues: what is left is
    the pipeline's floor (hops, polls, batching) plus the work on one photo. Stages, from the
    events' own timestamps: ``queue`` is received to a worker starting on it (the upload itself,
    the original's S3 write, Kafka), ``processing`` is the worker's, ``storage`` is processed to
    ImageReady (the variants through Kafka, the S3 sink's writes, the ImageReady).
    """
    chosen = list(zip(paths, owners, strict=True))[:photos]
    with running_pipeline(owners, workers=workers) as running:
        # A warm-up photo first: the first one through pays for connections and imports.
        warm = [(running.names[chosen[0][1]], chosen[0][0].read_bytes() + b"warm-up" + running.run.encode())]
        asyncio.run(running.post(warm, 1))
        running.ready_events(1, 300)
        for index, (path, owner) in enumerate(chosen):
            asyncio.run(running.post([(running.names[owner], path.read_bytes() + running.run.encode())], 1))
            running.ready_events(index + 2, 300)
        ready = running.ready_events(len(chosen) + 1, 300)
        processed = running.processed_events()
    events = sorted(ready.values(), key=lambda e: e.received_at)[1:]  # past the warm-up
    stages: dict[str, list[float]] = {"total": [], "queue": [], "processing": [], "storage": []}
    for event in events:
        done = processed[event.upload_id]
        stages["total"].append((event.ready_at - event.received_at).total_seconds())
        stages["queue"].append((done.processing_started_at - event.received_at).total_seconds())
        stages["processing"].append((done.processed_at - done.processing_started_at).total_seconds())
        stages["storage"].append((event.ready_at - done.processed_at).total_seconds())
    return {
        "photos": len(events),
        **{f"{stage}_p50_seconds": statistics.median(values) for stage, values in stages.items()},
        "total_p95_seconds": _quantile(stages["total"], 0.95),
    }


async def _post_keeping_backlog(
    running: RunningPipeline, bodies: list[tuple[str, bytes]], backlog: int, clients: int
) -> None:
    """POST the bodies, never more than ``backlog`` of them accepted and not yet ready.

    So uploads go on beside the processing for the whole run, as in production, and the workers
    always have work waiting.
    """
    who = set(running.names.values())
    queue = list(reversed(bodies))
    posting: set[asyncio.Task[None]] = set()
    posted = 0
    async with _session(clients) as session:
        while queue or posting:
            await asyncio.to_thread(running.reader.poll_until, lambda _reader: False, 0.1)
            ready = len({event.upload_id for event in running.reader.of(PHOTO_READY, who)})
            while queue and posted - ready < backlog and len(posting) < clients:
                owner, body = queue.pop()
                posting.add(asyncio.create_task(_post_one(session, running.url, running.keys[owner], body)))
                posted += 1
            done = {task for task in posting if task.done()}
            for task in done:
                task.result()
            posting -= done


def sustained(paths: list[Path], *, photos: int = 200, backlog: int = 24, clients: int = 8, workers: int = 2) -> dict:
    """The pipeline's sustained rate: ``photos`` uploads kept ``backlog`` ahead of the processing.

    The photos are the set's, repeated with distinct trailing bytes (a distinct upload each; the
    repeats are near-duplicates, processed in full all the same). Uploading goes on for the whole
    run and the workers always have work waiting, so the rate of ImageReady between the first and
    the last quarter is what the pipeline sustains with everything sharing the cores.
    """
    owners = ["heavy" if index % 2 else f"light-{index % 7}" for index in range(photos)]
    with running_pipeline(owners, workers=workers) as running:
        bodies = [
            (running.names[owner], paths[index % len(paths)].read_bytes() + f"{running.run}-{index}".encode())
            for index, owner in enumerate(owners)
        ]
        with CpuShare() as share:
            asyncio.run(_post_keeping_backlog(running, bodies, backlog, clients))
            ready = running.ready_events(len(bodies), 3600)
    finished = sorted(event.ready_at for event in ready.values())
    first, last = len(finished) // 4, 3 * len(finished) // 4
    return {
        "photos": len(finished),
        "measured_photos": last - first,
        "per_second": (last - first) / (finished[last] - finished[first]).total_seconds(),
        # Where the core-seconds of the whole run went, per photo.
        "cpu_seconds_per_photo": {role: cpu / len(finished) for role, cpu in share.seconds.items()},
    }


async def _open_loop_posts(running: RunningPipeline, arrivals: list[tuple[float, str, bytes]]) -> None:
    """POST each (offset in seconds, photographer, body) at its time, whatever the answers before it."""
    async with _session(256) as session:
        started = time.monotonic()

        async def post(at: float, owner: str, body: bytes) -> None:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            await _post_one(session, running.url, running.keys[owner], body)

        await asyncio.gather(*(post(at, owner, body) for at, owner, body in arrivals))


def open_loop(
    paths: list[Path], *, rate: float, seconds: float, photographers: int = 15, heavy_share: float = 0.3, seed: int = 1
) -> dict:
    """Latency under steady load: Poisson arrivals at ``rate`` photos/s for ``seconds``, sent on time whatever happens.

    One photographer sends ``heavy_share`` of the photos, the others share the rest evenly. The
    latency of each photo is upload received to ImageReady (the events' own timestamps); the
    first tenth of the run is left out as warm-up.
    """
    rng = random.Random(seed)  # noqa: S311 - arrival times, repeatable from the seed
    owners = [f"p{index:02d}" for index in range(photographers)]
    weights = [heavy_share] + [(1 - heavy_share) / (photographers - 1)] * (photographers - 1)
    with running_pipeline(owners) as running:
        arrivals: list[tuple[float, str, bytes]] = []
        at = rng.expovariate(rate)
        while at < seconds:
            owner = rng.choices(owners, weights)[0]
            body = paths[len(arrivals) % len(paths)].read_bytes() + f"{running.run}-{len(arrivals)}".encode()
            arrivals.append((at, running.names[owner], body))
            at += rng.expovariate(rate)
        asyncio.run(_open_loop_posts(running, arrivals))
        ready = running.ready_events(len(arrivals), 1800)
    events = sorted(ready.values(), key=lambda e: e.received_at)
    measured = events[len(events) // 10 :]
    latencies = [(e.ready_at - e.received_at).total_seconds() for e in measured]
    return {
        "rate": rate,
        "seconds": seconds,
        "photos": len(events),
        "p50_seconds": statistics.median(latencies),
        "p95_seconds": _quantile(latencies, 0.95),
        "p99_seconds": _quantile(latencies, 0.99),
    }


if __name__ == "__main__":
    sys.exit("run bench/run.py")
