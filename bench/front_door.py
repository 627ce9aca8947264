"""The front door: the three ways to upload against raw S3 PUTs of the same photos, side by side.

One gateway process on the running stack; ``clients`` uploads at once, each method in turn, the
order rotated from round to round so that a machine getting busier does not favour one. Each
method starts from a settled store (``_settle``) and makes ``WARM_UP`` untimed uploads before its
timed ones, so that none pays for the one before it, and the run opens with an untimed batch of
raw PUTs, so that no way pays for a store that was idle. Every upload is distinct content (a few
random bytes after the JPEG's end, which decoders ignore): the gateway answers a repeat from its
ledger without storing anything.

- raw S3 PUT: the bytes straight to the store with boto3, the ceiling.
- raw S3 PUT, SHA-256: the same, through a URL presigned for the file's SHA-256 as the direct path
  gets from the gateway: the store checks the hash, so this is the direct path without the gateway.
- multipart POST: ``POST /v1/uploads``, 202 once the original is in S3 and the event in Kafka.
- tus: create, then one PATCH with the whole file (tus-js-client's default chunk size).
- direct: the client hashes the file, declares it, PUTs it to the presigned URL, completes it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import urllib3

from bench.cpu_share import CpuShare
from bench.pipeline_bench import _start_gateway
from photostream.clients import s3_client
from photostream.config import KafkaSettings, S3Settings
from photostream.stack import Stack
from photostream.topics import ensure_topics
from producers.keys import create_keys

RAW = "raw S3 PUT"
RAW_SHA256 = "raw S3 PUT, SHA-256"
METHODS = (RAW, RAW_SHA256, "multipart POST", "tus", "direct")
CPU_PARTS = ("client", "gateway", "s3 server", "kafka")
GOALS = {"multipart POST": 0.6, "tus": 0.5, "direct": 0.9}
WAYS = {"raw-sha256": RAW_SHA256, "post": "multipart POST", "tus": "tus", "direct": "direct"}  # --ways

# Uploads each way makes, untimed, before it is timed: whatever the way before left the store to do (tus
# leaves it something: the next way's uploads cost the store 20-30 ms more each, the ones after not) is
# done by then, whichever way comes next. Distinct photos too: a repeat would be answered from the ledger.
WARM_UP = 16

DROP_CACHES = Path("/proc/sys/vm/drop_caches")

# Timed uploads of each way in a round: six per client, so the ramp at the start and the tail at the end, when
# fewer than ``clients`` are in flight, weigh little. With two per client (64) a way's rate moved by a tenth from
# round to round, and the direct path read 0.75-0.97 of a raw PUT; with six, 0.84-0.90.
UPLOADS = 192

# Every way's client sends from a thread of its own with one blocking HTTP call per request, as boto3
# does for the raw PUTs: a single event loop writing 32 large bodies would be the bench's own limit.
Upload = Callable[[urllib3.PoolManager, bytes], None]


def _expect(response: urllib3.BaseHTTPResponse, status: int, what: str) -> urllib3.BaseHTTPResponse:
    if response.status != status:
        raise RuntimeError(f"{what} answered {response.status}: {response.data[:300]!r}")
    return response


def _post_one(http: urllib3.PoolManager, url: str, key: str, body: bytes) -> None:
    fields = {"file": ("photo.jpg", body, "image/jpeg")}
    response = http.request("POST", f"{url}/v1/uploads", fields=fields, headers={"Authorization": f"Bearer {key}"})
    _expect(response, 202, "POST")


def _tus_one(http: urllib3.PoolManager, url: str, key: str, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    metadata = f"filename {base64.b64encode(b'photo.jpg').decode()}"
    created = http.request(
        "POST", f"{url}/v1/tus/", headers={**headers, "Upload-Length": str(len(body)), "Upload-Metadata": metadata}
    )
    location = _expect(created, 201, "tus create").headers["Location"]
    patch_headers = {**headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    done = _expect(http.request("PATCH", f"{url}{location}", body=body, headers=patch_headers), 204, "tus PATCH")
    if "Photostream-Upload-Id" not in done.headers:
        raise RuntimeError("the last PATCH did not name the upload")


def _direct_one(http: urllib3.PoolManager, url: str, key: str, body: bytes) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    declaration = {"filename": "photo.jpg", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    declared = http.request("POST", f"{url}/v1/uploads/direct", json=declaration, headers=auth)
    answer = json.loads(_expect(declared, 201, "direct declare").data)
    _expect(http.request("PUT", answer["url"], body=body, headers=answer["headers"]), 200, "S3 PUT")
    _expect(http.request("POST", f"{url}{answer['complete_url']}", headers=auth), 202, "complete")


def _rate(bodies: list[bytes], clients: int, upload: Upload) -> float:
    """Uploads per second with ``clients`` at once, from the first start to the last finish."""
    http = urllib3.PoolManager(maxsize=clients, timeout=urllib3.Timeout(total=600), retries=False)
    try:
        with ThreadPoolExecutor(clients) as pool:
            started = time.monotonic()
            for done in [pool.submit(upload, http, body) for body in bodies]:
                done.result()
            return len(bodies) / (time.monotonic() - started)
    finally:
        http.clear()


def _raw_rate(s3: S3Settings, bodies: list[bytes], clients: int, *, sha256: bool) -> float:
    """The ceiling: PUTs of the same bytes straight to the store, ``clients`` threads at once.

    Plain, boto3's ``put_object`` (with its default CRC32). With ``sha256``, the client hashes the file
    and PUTs it to a URL presigned for that hash, as a direct upload does, so the store checks it.
    """
    client = s3_client(s3, timeout=600, max_pool_connections=clients)
    prefix = f"bench/raw/{uuid.uuid4().hex[:8]}"

    def put(_http: urllib3.PoolManager, body: bytes) -> None:
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{uuid.uuid4().hex}", Body=body, ContentType="image/jpeg")

    def put_bound(http: urllib3.PoolManager, body: bytes) -> None:
        checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
        params = {"Bucket": s3.bucket, "Key": f"{prefix}/{uuid.uuid4().hex}", "ChecksumSHA256": checksum}
        url = client.generate_presigned_url("put_object", Params=params, ExpiresIn=600)
        _expect(http.request("PUT", url, body=body, headers={"x-amz-checksum-sha256": checksum}), 200, "S3 PUT")

    try:
        return _rate(bodies, clients, put_bound if sha256 else put)
    finally:
        _delete_under(client, s3.bucket, prefix)


def _upload_all(method: str, bodies: list[bytes], *, s3: S3Settings, clients: int, ways: dict[str, Upload]) -> float:
    """Uploads per second of ``method`` sending ``bodies``."""
    if method in (RAW, RAW_SHA256):
        return _raw_rate(s3, bodies, clients, sha256=method == RAW_SHA256)
    return _rate(bodies, clients, ways[method])


def _bodies(paths: list[Path], count: int) -> list[bytes]:
    """``count`` distinct photos: the given ones in turn, each with a few random bytes after its end."""
    return [paths[i % len(paths)].read_bytes() + uuid.uuid4().bytes for i in range(count)]


def _delete_under(client: Any, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix``: a run stores gigabytes, which the next would find the disk short of."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])


def _settle(s3: S3Settings, photographer: str) -> bool:
    """Give every way the store as the one before found it, a disk with nothing left to write, free memory.

    What the last way stored is deleted, the local store's volumes are vacuumed (SeaweedFS keeps deleted
    bytes until then, and vacuums by itself every 15 minutes, into whatever is being timed) and the page
    cache is written out. Without this the plain raw PUT's rate moved by a third between rounds, the
    first round after a pause being the slowest.

    Then the clean page cache is dropped, where this process may (root): a way writes 5-6 GB and its
    photos take as much again in the clients' memory, so two ways in a row filled the 24 GB machine's
    free memory with cached volume files, and whichever way came next paid for reclaiming it in the
    store's writes. Returns whether it was dropped.
    """
    client = s3_client(s3)
    for prefix in ("originals", "tus", "incoming"):
        _delete_under(client, s3.bucket, f"{prefix}/{photographer}/")
    seaweed = Stack(s3=s3).s3
    if seaweed.endpoint == s3.endpoint_url and seaweed.answers():
        seaweed.vacuum()
    os.sync()
    try:
        DROP_CACHES.write_text("1\n")
    except OSError:  # not root, or no /proc: the run says so in its report
        return False
    return True


def measure(
    paths: list[Path],
    *,
    clients: int = 32,
    uploads: int = UPLOADS,
    runs: int = 3,
    methods: tuple[str, ...] = METHODS,
) -> dict:
    """Uploads per second of each of ``methods`` and its ratio to raw S3 PUT, per round and as medians.

    The raw S3 PUT is always measured: it is what the others are divided by.
    """
    methods = (RAW, *(method for method in METHODS if method in methods and method != RAW))
    kafka, s3 = KafkaSettings(), S3Settings()
    ensure_topics(kafka)
    photographer = f"bench-door-{uuid.uuid4().hex[:8]}"
    key = asyncio.run(create_keys(s3, [photographer]))[photographer]
    rates: dict[str, list[float]] = {method: [] for method in methods}
    cpu: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    dropped: list[bool] = []
    with tempfile.TemporaryDirectory() as directory:
        gateway, url = _start_gateway(kafka, s3, Path(directory), {})
        uploads_by_method: dict[str, Upload] = {
            "multipart POST": lambda http, body: _post_one(http, url, key, body),
            "tus": lambda http, body: _tus_one(http, url, key, body),
            "direct": lambda http, body: _direct_one(http, url, key, body),
        }
        try:
            # The first batch of large writes after the store has been idle ran about a quarter slower than
            # the same batch later (the raw PUT opens every run, and read 3.7-4.4 uploads/s in round 1 of three
            # runs against 5.0-6.0 after): one untimed batch takes that for the whole run.
            dropped.append(_settle(s3, photographer))
            _upload_all(RAW, _bodies(paths, uploads + WARM_UP), s3=s3, clients=clients, ways=uploads_by_method)
            for round_number in range(runs):
                order = methods[round_number % len(methods) :] + methods[: round_number % len(methods)]
                for method in order:
                    upload_all = partial(_upload_all, method, s3=s3, clients=clients, ways=uploads_by_method)
                    bodies = _bodies(paths, uploads + WARM_UP)
                    dropped.append(_settle(s3, photographer))
                    upload_all(bodies[uploads:])
                    client_before = _own_cpu_seconds()
                    with CpuShare() as share:
                        rate = upload_all(bodies[:uploads])
                    used = {"client": _own_cpu_seconds() - client_before, **share.seconds}
                    cpu[method].append({part: used.get(part, 0.0) * 1000 / uploads for part in CPU_PARTS})
                    rates[method].append(rate)
                    del bodies  # before the next way's are made: 5-6 GB of memory each
                    print(f"  round {round_number + 1}, {method}: {rate:.1f} uploads/s", flush=True)
        finally:
            gateway.stop()
            _settle(s3, photographer)
    raw = rates[RAW]
    ratios = {method: [rate / base for rate, base in zip(rates[method], raw, strict=True)] for method in methods[1:]}
    megabytes = statistics.mean(path.stat().st_size for path in paths) / 1e6
    return {
        "clients": clients,
        "uploads": uploads,
        "runs": runs,
        "megabytes_each": round(megabytes, 2),
        "page_cache_dropped": all(dropped),
        "rates": rates,
        "ratios": ratios,
        "medians": {method: statistics.median(values) for method, values in rates.items()},
        "median_ratios": {method: statistics.median(values) for method, values in ratios.items()},
        # Milliseconds of CPU per upload, by part, median over the rounds: what each way costs the machine.
        "cpu_ms": {
            method: {part: statistics.median(run[part] for run in runs_) for part in CPU_PARTS}
            for method, runs_ in cpu.items()
            if runs_
        },
    }


def _own_cpu_seconds() -> float:
    """CPU seconds this process (the clients) used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def report(result: dict) -> list[str]:
    """The front door as markdown: each method's rate, its ratio to raw S3 PUT, and the goal."""
    lines = [
        f"| {result['clients']} clients, {result['megabytes_each']} MB each, median of {result['runs']} rounds "
        "| uploads/s | ÷ raw S3 PUT (min-max) | goal | met |",
        "|---|---|---|---|---|",
    ]
    for method in result["medians"]:
        rate = result["medians"][method]
        if method == RAW:
            lines.append(f"| {method} | {rate:.1f} | 1.00 | | |")
            continue
        ratio, spread = result["median_ratios"][method], result["ratios"][method]
        cells = f"| {method} | {rate:.1f} | {ratio:.2f} ({min(spread):.2f}-{max(spread):.2f}) |"
        if method in GOALS:
            lines.append(f"{cells} ≥ {GOALS[method]} | {'yes' if ratio >= GOALS[method] else 'no'} |")
        else:
            lines.append(f"{cells} | |")
    if "direct" in result["rates"] and RAW_SHA256 in result["rates"]:
        # The direct path is a PUT bound to its SHA-256 plus the gateway: against such a PUT, only the gateway is left.
        direct_to_bound = [
            direct / bound for direct, bound in zip(result["rates"]["direct"], result["rates"][RAW_SHA256], strict=True)
        ]
        lines += [
            "",
            f"direct ÷ {RAW_SHA256}: {statistics.median(direct_to_bound):.2f} "
            f"({min(direct_to_bound):.2f}-{max(direct_to_bound):.2f}), the cost of the gateway's part alone.",
        ]
    if result.get("page_cache_dropped") is False:
        lines += [
            "",
            "The page cache was not dropped between ways (that needs root): ways that came after a full page "
            "cache paid for reclaiming it.",
        ]
    if result.get("cpu_ms"):
        # Rates move with the store's state from run to run; the CPU an upload costs each part moves far less.
        lines += [
            "",
            f"| ms of CPU per upload (median) | {' | '.join(CPU_PARTS)} | total |",
            "|---" * (len(CPU_PARTS) + 2) + "|",
        ]
        for method, parts in result["cpu_ms"].items():
            cells = " | ".join(f"{parts[part]:.0f}" for part in CPU_PARTS)
            lines.append(f"| {method} | {cells} | {sum(parts.values()):.0f} |")
    return lines


def main() -> None:
    """Run the front-door measurement alone on the running stack: ``python -m bench.front_door``."""
    import argparse

    from bench.photoset import photo_set, production_sized

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--uploads", type=int, default=UPLOADS, help="timed uploads of each way per round")
    parser.add_argument("--runs", type=int, default=3)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--production-sizes", action="store_true", help="photos of 5-50 MB, as the service takes, not 12 MP JPEGs"
    )
    sizes.add_argument(
        "--tiny",
        action="store_true",
        help="64x48 JPEGs of a few KB: what each way costs beside a raw PUT, apart from carrying the photo",
    )
    parser.add_argument(
        "--ways",
        nargs="+",
        choices=sorted(WAYS),
        default=sorted(WAYS),
        help="the ways to time beside the raw S3 PUT (all by default)",
    )
    args = parser.parse_args()
    if args.production_sizes:
        paths = list(production_sized())
    elif args.tiny:
        paths = list(photo_set(7, 64, 48).paths)
    else:
        paths = list(photo_set().paths)
    methods = tuple(WAYS[way] for way in args.ways)
    result = measure(paths, clients=args.clients, uploads=args.uploads, runs=args.runs, methods=methods)
    print("\n".join(report(result)))


if __name__ == "__main__":
    main()
