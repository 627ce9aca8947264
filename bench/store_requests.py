"""CPU per small S3 request: the store's signed aiohttp requests against boto3 on a thread pool, side by side.

    make stack-up && .venv/bin/python -m bench.store_requests [--requests 2000] [--rounds 3]

Each round sends the same requests both ways, 32 at once as a busy gateway does: a GET and a PUT of
a 300-byte JSON record. boto3 runs each call on a thread, as ``ObjectStore`` ran all of them before
its small requests moved to ``SignedS3``. It prints this process's CPU per request (the S3 server's
is the same both ways: the same requests) and the ratio, per round and as the median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from photostream.clients import s3_client
from photostream.config import S3Settings
from photostream.objectstore import ObjectStore

CONCURRENCY = 32
RECORD = b'{"photographer_id": "bench", "note": "' + b"x" * 260 + b'"}'


async def cpu_ms_per_request(requests: int, send: Callable[[int], Awaitable[object]]) -> float:
    """Milliseconds of this process's CPU per request, ``CONCURRENCY`` in flight."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int) -> None:
        async with limit:
            await send(index)

    started = time.process_time()
    await asyncio.gather(*(one(index) for index in range(requests)))
    return (time.process_time() - started) * 1000 / requests


async def measure(requests: int, rounds: int) -> dict[str, list[float]]:
    """CPU per request of each way (GET and PUT, boto3 and signed), one value per round."""
    settings = S3Settings()
    prefix = f"bench/store-requests/{uuid.uuid4().hex[:8]}"
    store = ObjectStore(settings, max_workers=CONCURRENCY)
    client = s3_client(settings, max_pool_connections=CONCURRENCY)
    pool = ThreadPoolExecutor(CONCURRENCY)
    loop = asyncio.get_running_loop()

    def boto3_get(_: int) -> Awaitable[object]:
        return loop.run_in_executor(
            pool, lambda: client.get_object(Bucket=settings.bucket, Key=f"{prefix}/record")["Body"].read()
        )

    def boto3_put(index: int) -> Awaitable[object]:
        key = f"{prefix}/put-{index % 64}"
        return loop.run_in_executor(
            pool,
            lambda: client.put_object(Bucket=settings.bucket, Key=key, Body=RECORD, ContentType="application/json"),
        )

    def signed_get(_: int) -> Awaitable[object]:
        return store.get(f"{prefix}/record")

    def signed_put(index: int) -> Awaitable[object]:
        return store.put(f"{prefix}/put-{index % 64}", RECORD, content_type="application/json")

    ways = {"GET, boto3": boto3_get, "GET, signed": signed_get, "PUT, boto3": boto3_put, "PUT, signed": signed_put}
    results: dict[str, list[float]] = {way: [] for way in ways}
    try:
        await store.put(f"{prefix}/record", RECORD, content_type="application/json")
        for send in ways.values():  # untimed: connections opened, code paths warm
            await cpu_ms_per_request(CONCURRENCY * 4, send)
        for round_number in range(rounds):
            order = list(ways.items())
            if round_number % 2:
                order.reverse()
            for way, send in order:
                results[way].append(await cpu_ms_per_request(requests, send))
            print(
                f"  round {round_number + 1}: " + ", ".join(f"{way} {results[way][-1]:.2f} ms" for way in ways),
                flush=True,
            )
    finally:
        for key in await store.list_keys(prefix + "/"):
            await store.delete(key)
        await store.close()
        pool.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests of each kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(measure(args.requests, args.rounds))
    print(f"\nCPU per request of this process, median of {args.rounds} rounds, {CONCURRENCY} in flight:")
    for kind in ("GET", "PUT"):
        boto3 = statistics.median(results[f"{kind}, boto3"])
        signed = statistics.median(results[f"{kind}, signed"])
        print(f"  {kind}: boto3 on threads {boto3:.2f} ms, signed aiohttp {signed:.2f} ms (ratio {signed / boto3:.2f})")


if __name__ == "__main__":
    main()
