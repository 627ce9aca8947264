"""The front door: the three ways to upload against raw S3 PUTs of the same photos, side by side.

One gateway process on the running stack; ``clients`` uploads at once, each method in turn, the
order rotated from round to round so that a machine getting busier does not favour one. Every
upload is distinct content (a few random bytes after the JPEG's end, which decoders ignore): the
gateway answers a repeat from its ledger without storing anything.

- raw S3 PUT: the bytes straight to the store with boto3, the ceiling.
- multipart POST: ``POST /v1/uploads``, 202 once the original is in S3 and the event in Kafka.
- tus: create, then one PATCH with the whole file (tus-js-client's default chunk size).
- direct: the client hashes the file, declares it, PUTs it to the presigned URL, completes it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bench.pipeline_bench import _post_one, _session, _start_gateway
from photostream.config import KafkaSettings, S3Settings
from photostream.objectstore import ObjectStore
from photostream.topics import ensure_topics
from producers.keys import create_keys

METHODS = ("raw S3 PUT", "multipart POST", "tus", "direct")
GOALS = {"multipart POST": 0.6, "tus": 0.5, "direct": 0.9}

Upload = Callable[[aiohttp.ClientSession, aiohttp.ClientSession, bytes], Awaitable[None]]


async def _tus_one(session: aiohttp.ClientSession, url: str, key: str, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    metadata = f"filename {base64.b64encode(b'photo.jpg').decode()}"
    async with session.post(
        f"{url}/v1/tus/", headers={**headers, "Upload-Length": str(len(body)), "Upload-Metadata": metadata}
    ) as created:
        if created.status != 201:
            raise RuntimeError(f"tus create answered {created.status}: {await created.text()}")
        location = created.headers["Location"]
    patch_headers = {**headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    async with session.patch(f"{url}{location}", data=io.BytesIO(body), headers=patch_headers) as done:
        await done.read()
        if done.status != 204 or "Photostream-Upload-Id" not in done.headers:
            raise RuntimeError(f"tus PATCH answered {done.status}")


async def _direct_one(
    session: aiohttp.ClientSession, s3: aiohttp.ClientSession, url: str, key: str, body: bytes
) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    sha256 = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    declaration = {"filename": "photo.jpg", "size": len(body), "sha256": sha256}
    async with session.post(f"{url}/v1/uploads/direct", json=declaration, headers=auth) as declared:
        if declared.status != 201:
            raise RuntimeError(f"direct declare answered {declared.status}: {await declared.text()}")
        answer = await declared.json()
    async with s3.put(answer["url"], data=io.BytesIO(body), headers=answer["headers"]) as put:
        await put.read()
        if put.status != 200:
            raise RuntimeError(f"S3 PUT answered {put.status}")
    async with session.post(f"{url}{answer['complete_url']}", headers=auth) as completed:
        await completed.read()
        if completed.status != 202:
            raise RuntimeError(f"complete answered {completed.status}")


async def _rate(bodies: list[bytes], clients: int, upload: Upload) -> float:
    """Uploads per second with ``clients`` at once, from the first start to the last finish."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client(session: aiohttp.ClientSession, s3: aiohttp.ClientSession) -> None:
        while not queue.empty():
            await upload(session, s3, queue.get_nowait())

    async with _session(clients) as session, _session(clients) as s3:
        started = time.monotonic()
        await asyncio.gather(*(client(session, s3) for _ in range(clients)))
        return len(bodies) / (time.monotonic() - started)


async def _raw_rate(s3: S3Settings, bodies: list[bytes], clients: int) -> float:
    store = ObjectStore(s3, max_workers=clients)
    prefix = f"bench/raw/{uuid.uuid4().hex[:8]}"
    try:
        return await _rate(
            bodies,
            clients,
            lambda _session, _s3, body: store.put(f"{prefix}/{uuid.uuid4().hex}", body, content_type="image/jpeg"),
        )
    finally:
        for key in await store.list_keys(prefix):
            await store.delete(key)
        store.close()


def measure(paths: list[Path], *, clients: int = 32, uploads: int = 64, runs: int = 3) -> dict:
    """Uploads per second of each method and its ratio to raw S3 PUT, per round and as medians."""
    kafka, s3 = KafkaSettings(), S3Settings()
    ensure_topics(kafka)
    photographer = f"bench-door-{uuid.uuid4().hex[:8]}"
    key = asyncio.run(create_keys(s3, [photographer]))[photographer]
    rates: dict[str, list[float]] = {method: [] for method in METHODS}
    with tempfile.TemporaryDirectory() as directory:
        gateway, url = _start_gateway(kafka, s3, Path(directory), {})
        uploads_by_method: dict[str, Upload] = {
            "multipart POST": lambda session, _s3, body: _post_one(session, url, key, body),
            "tus": lambda session, _s3, body: _tus_one(session, url, key, body),
            "direct": lambda session, s3_session, body: _direct_one(session, s3_session, url, key, body),
        }
        try:
            for round_number in range(runs):
                order = METHODS[round_number % len(METHODS) :] + METHODS[: round_number % len(METHODS)]
                for method in order:
                    bodies = [paths[i % len(paths)].read_bytes() + uuid.uuid4().bytes for i in range(uploads)]
                    if method == "raw S3 PUT":
                        rate = asyncio.run(_raw_rate(s3, bodies, clients))
                    else:
                        rate = asyncio.run(_rate(bodies, clients, uploads_by_method[method]))
                    rates[method].append(rate)
                    print(f"  round {round_number + 1}, {method}: {rate:.1f} uploads/s", flush=True)
        finally:
            gateway.stop()
    raw = rates["raw S3 PUT"]
    ratios = {method: [rate / base for rate, base in zip(rates[method], raw, strict=True)] for method in GOALS}
    megabytes = statistics.mean(path.stat().st_size for path in paths) / 1e6
    return {
        "clients": clients,
        "uploads": uploads,
        "runs": runs,
        "megabytes_each": round(megabytes, 2),
        "rates": rates,
        "ratios": ratios,
        "medians": {method: statistics.median(values) for method, values in rates.items()},
        "median_ratios": {method: statistics.median(values) for method, values in ratios.items()},
    }


def report(result: dict) -> list[str]:
    """The front door as markdown: each method's rate, its ratio to raw S3 PUT, and the goal."""
    lines = [
        f"| {result['clients']} clients, {result['megabytes_each']} MB each, median of {result['runs']} rounds "
        "| uploads/s | ÷ raw S3 PUT (min-max) | goal | met |",
        "|---|---|---|---|---|",
    ]
    for method in METHODS:
        rate = result["medians"][method]
        if method not in GOALS:
            lines.append(f"| {method} | {rate:.1f} | 1.00 | | |")
            continue
        ratio, spread = result["median_ratios"][method], result["ratios"][method]
        met = "yes" if ratio >= GOALS[method] else "no"
        lines.append(
            f"| {method} | {rate:.1f} | {ratio:.2f} ({min(spread):.2f}-{max(spread):.2f}) | ≥ {GOALS[method]} | {met} |"
        )
    return lines


def main() -> None:
    """Run the front-door measurement alone on the running stack: ``python -m bench.front_door``."""
    import argparse

    from bench.photoset import photo_set, production_sized

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--uploads", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--production-sizes", action="store_true", help="photos of 5-50 MB, as the service takes, not 12 MP JPEGs"
    )
    args = parser.parse_args()
    paths = list(production_sized()) if args.production_sizes else list(photo_set().paths)
    result = measure(paths, clients=args.clients, uploads=args.uploads, runs=args.runs)
    print("\n".join(report(result)))


if __name__ == "__main__":
    main()
