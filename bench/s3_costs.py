"""What each kind of S3 request costs in CPU: the S3 server's, and the caller's (boto3), per request.

The front door's ways in differ from a raw PUT by the requests they add (the ledger's small objects, the
ranged GET that sniffs a direct upload, the checksum the presigned PUT is bound to), so this prices each
kind on the local stack, the server's CPU read from /proc as ``bench.cpu_share`` does. Medians of a few
rounds, the kinds alternated within each round. Needs the stack (``photostream stack up``).

    .venv/bin/python -m bench.s3_costs            # prints a markdown table
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import time
import uuid
from collections.abc import Callable

import urllib3

from bench.cpu_share import CpuShare
from photostream.clients import s3_client
from photostream.config import S3Settings

LARGE_BYTES = 27_600_000  # the mean production original of bench.photoset.production_sized


def main() -> None:
    """Price each request kind and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", type=int, default=8, help="large PUTs of each kind per round")
    parser.add_argument("--small", type=int, default=100, help="small requests of each kind per round")
    options = parser.parse_args()
    s3 = S3Settings()
    client = s3_client(s3)
    http = urllib3.PoolManager()
    prefix = f"bench/s3-costs/{uuid.uuid4().hex[:8]}"
    body = os.urandom(LARGE_BYTES)
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()

    def presigned_put(key: str, *, bound: bool) -> None:
        params = {"Bucket": s3.bucket, "Key": key, "ContentLength": len(body)}
        headers = {"Content-Length": str(len(body))}
        if bound:  # as producers.direct signs it: S3 refuses other bytes
            params["ChecksumSHA256"] = checksum
            headers["x-amz-checksum-sha256"] = checksum
        url = client.generate_presigned_url("put_object", Params=params, ExpiresIn=600)
        response = http.request("PUT", url, body=body, headers=headers)
        if response.status != 200:
            raise RuntimeError(f"presigned PUT answered {response.status}: {response.data[:200]!r}")

    def missing(key: str) -> None:
        try:
            client.get_object(Bucket=s3.bucket, Key=key)
        except client.exceptions.NoSuchKey:
            return

    def small(i: int) -> str:
        return f"{prefix}/small-{i}"

    large = f"{prefix}/large"
    client.put_object(Bucket=s3.bucket, Key=large, Body=body)
    kinds: dict[str, tuple[int, Callable[[int], object]]] = {
        "PUT 27.6 MB, boto3 (its default CRC32)": (
            options.large,
            lambda i: client.put_object(Bucket=s3.bucket, Key=f"{prefix}/raw-{i}", Body=body),
        ),
        "PUT 27.6 MB, presigned, bound to its SHA-256": (
            options.large,
            lambda i: presigned_put(f"{prefix}/bound-{i}", bound=True),
        ),
        "PUT 27.6 MB, presigned, no checksum": (
            options.large,
            lambda i: presigned_put(f"{prefix}/unbound-{i}", bound=False),
        ),
        "PUT 2 bytes": (
            options.small,
            lambda i: client.put_object(Bucket=s3.bucket, Key=f"{prefix}/s-{i}", Body=b"{}"),
        ),
        "GET 2 bytes": (
            options.small,
            lambda i: client.get_object(Bucket=s3.bucket, Key=f"{prefix}/s-{i}")["Body"].read(),
        ),
        "GET of a missing key": (options.small, lambda i: missing(f"{prefix}/none-{i}")),
        "GET 4 KB range of a large object": (
            options.small,
            lambda i: client.get_object(Bucket=s3.bucket, Key=large, Range="bytes=0-4095")["Body"].read(),
        ),
        "DELETE": (options.small, lambda i: client.delete_object(Bucket=s3.bucket, Key=small(i))),
    }
    server: dict[str, list[float]] = {kind: [] for kind in kinds}
    caller: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for _ in range(options.rounds):
            for kind, (count, request) in kinds.items():
                before = time.process_time()
                with CpuShare() as share:
                    for i in range(count):
                        request(i)
                caller[kind].append((time.process_time() - before) * 1000 / count)
                server[kind].append(share.seconds["s3 server"] * 1000 / count)
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=s3.bucket, Key=item["Key"])
    print(f"| request ({options.rounds} rounds, median) | S3 server ms of CPU | caller ms of CPU |")
    print("|---|---|---|")
    for kind in kinds:
        print(f"| {kind} | {statistics.median(server[kind]):.1f} | {statistics.median(caller[kind]):.1f} |")


if __name__ == "__main__":
    main()
