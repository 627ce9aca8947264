"""What the direct path's own requests cost per upload at a busy pace and at production's, side by side.

A direct upload of a few-KB JPEG is almost nothing but the direct path's own part: two requests to
the gateway, eight small S3 requests and a Kafka send. This times it two ways, alternated: 32
clients back to back (about 170 uploads/s here), and the same 32 clients each waiting a random
0-``--pause`` seconds before each upload (about 10 uploads/s, near the 6-7 a second of 27.6 MB uploads on
these 2 cores). It prints the CPU per upload of the gateway, the S3 server and Kafka in each, read from
/proc as ``bench.cpu_share`` does, less what each uses idle over the same time (measured before
each round: an idle broker serving the gateway's progress feed uses about 40 ms a second).
Needs the stack (``photostream stack up``).

    .venv/bin/python -m bench.direct_pace [--rounds 2] [--pause 5]

At a slow pace every request is handled alone: an event loop or a goroutine woken for it, caches
cold from the large writes around it. What a request costs there, not what it costs in a busy
batch, is what the direct path pays beside production's photos.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import urllib3

from bench.cpu_share import CpuShare
from bench.front_door import _bodies, _direct_one, _rate
from bench.photoset import photo_set
from bench.pipeline_bench import _start_gateway
from photostream.config import KafkaSettings, S3Settings
from producers.keys import create_keys

CLIENTS = 32
PARTS = ("gateway", "s3 server", "kafka")


def _idle(seconds: float) -> dict[str, float]:
    """CPU seconds per second each part uses with no upload going on (the broker and the store keep busy)."""
    with CpuShare() as share:
        time.sleep(seconds)
    return {part: share.seconds.get(part, 0.0) / seconds for part in PARTS}


def _paced(
    url: str, key: str, bodies: list[bytes], pause: float, idle: dict[str, float]
) -> tuple[float, dict[str, float]]:
    """Uploads per second, and ms of CPU per upload by part beyond ``idle``, each upload after a 0-``pause`` s wait."""
    rng = random.Random(len(bodies))  # noqa: S311 - waits before uploads, not secrets

    def one(http: urllib3.PoolManager, body: bytes) -> None:
        time.sleep(rng.uniform(0, pause))
        _direct_one(http, url, key, body)

    with CpuShare() as share:
        rate = _rate(bodies, CLIENTS, one)
    elapsed = len(bodies) / rate
    used = {part: share.seconds.get(part, 0.0) - idle[part] * elapsed for part in PARTS}
    return rate, {part: seconds * 1000 / len(bodies) for part, seconds in used.items()}


def main() -> None:
    """Time both paces ``--rounds`` times and print a markdown table of the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=5.0, help="longest wait before each upload at the slow pace")
    parser.add_argument("--busy-uploads", type=int, default=600)
    parser.add_argument("--slow-uploads", type=int, default=192)
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="how long each round measures the idle CPU")
    options = parser.parse_args()
    kafka, s3 = KafkaSettings(), S3Settings()
    photographer = f"bench-pace-{uuid.uuid4().hex[:8]}"
    key = asyncio.run(create_keys(s3, [photographer]))[photographer]
    paths = list(photo_set(7, 64, 48).paths)
    paces = {
        "back to back": (0.0, options.busy_uploads),
        f"0-{options.pause:g} s apart": (options.pause, options.slow_uploads),
    }
    results: dict[str, list[tuple[float, dict[str, float]]]] = {pace: [] for pace in paces}
    idles: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as directory:
        gateway, url = _start_gateway(kafka, s3, Path(directory), {})
        try:
            # Untimed: the gateway's first requests, and a broker that has just started (its JIT compiling), would
            # show as idle CPU in the first round's idle window.
            _paced(url, key, _bodies(paths, 4 * CLIENTS), 0.0, dict.fromkeys(PARTS, 0.0))
            for round_number in range(options.rounds):
                idle = _idle(options.idle_seconds)
                idles.append(idle)
                for pace, (pause, uploads) in paces.items():
                    rate, cpu = _paced(url, key, _bodies(paths, uploads), pause, idle)
                    results[pace].append((rate, cpu))
                    print(f"  round {round_number + 1}, {pace}: {rate:.1f} uploads/s", flush=True)
        finally:
            gateway.stop()
    print(f"| tiny direct uploads, {CLIENTS} clients, median of {options.rounds} rounds | uploads/s | "
          + " | ".join(f"{part} ms of CPU per upload" for part in PARTS) + " |")  # fmt: skip
    print("|---" * (len(PARTS) + 2) + "|")
    for pace, runs in results.items():
        cells = " | ".join(f"{statistics.median(cpu[part] for _, cpu in runs):.1f}" for part in PARTS)
        print(f"| {pace} | {statistics.median(rate for rate, _ in runs):.1f} | {cells} |")
    idle = ", ".join(f"{part} {statistics.median(each[part] for each in idles) * 1000:.1f}" for part in PARTS)
    print(f"\nSubtracted, ms of CPU a second each part uses with no upload going on: {idle}.")


if __name__ == "__main__":
    main()
