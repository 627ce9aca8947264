"""Peak memory of the gateway while many large uploads arrive at once.

Starts `photostream gateway` as its own process against the running local stack,
uploads 20 files of 15 MB at the same time, then 20 files of 45 MB, and prints the
gateway's peak resident memory (VmHWM) after each round. The gateway streams, so
the peak should stay flat when the files triple in size.

    make stack-up && .venv/bin/python bench/gateway_memory.py
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

MB = 1024 * 1024
CONCURRENCY = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def make_file(folder: Path, index: int, size: int) -> Path:
    """A file the gateway takes for a JPEG: a JPEG signature, then random bytes."""
    path = folder / f"photo-{size // MB}mb-{index}.jpg"
    with path.open("wb") as out:
        out.write(b"\xff\xd8\xff\xe0" + b"\0" * 28)
        left = size - 32
        while left > 0:
            chunk = os.urandom(min(left, 4 * MB))
            out.write(chunk)
            left -= len(chunk)
    return path


async def upload_all(url: str, api_key: str, files: list[Path]) -> list[int]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(path: Path) -> int:
            with path.open("rb") as handle:
                data = aiohttp.FormData()
                data.add_field("file", handle, filename=path.name)
                async with session.post(
                    f"{url}/v1/uploads", data=data, headers={"Authorization": f"Bearer {api_key}"}
                ) as response:
                    await response.read()
                    return response.status

        return await asyncio.gather(*(one(path) for path in files))


def main() -> None:
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port)}
    cli = [sys.executable, "-m", "photostream"]
    keys = subprocess.run([*cli, "keys", "create", "bench-memory"], env=env, capture_output=True, text=True, check=True)
    api_key = keys.stdout.strip().splitlines()[-1]
    gateway = subprocess.Popen([*cli, "gateway"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise SystemExit("the gateway did not start") from None
                time.sleep(0.2)
        idle = peak_rss_mb(gateway.pid)
        print(f"gateway idle peak RSS: {idle:.0f} MB")
        peaks = {}
        with tempfile.TemporaryDirectory() as tmp:
            for size_mb in (15, 45):
                files = [make_file(Path(tmp), i, size_mb * MB) for i in range(CONCURRENCY)]
                started = time.perf_counter()
                statuses = asyncio.run(upload_all(url, api_key, files))
                elapsed = time.perf_counter() - started
                peaks[size_mb] = peak_rss_mb(gateway.pid)
                accepted = statuses.count(202)
                rate = CONCURRENCY * size_mb / elapsed
                print(
                    f"{CONCURRENCY} x {size_mb} MB at once: {accepted}/{CONCURRENCY} accepted in {elapsed:.1f}s "
                    f"({rate:.0f} MB/s), gateway peak RSS {peaks[size_mb]:.0f} MB"
                )
                for path in files:
                    path.unlink()
        ratio = peaks[45] / peaks[15]
        print(f"peak RSS ratio 45 MB / 15 MB files: {ratio:.3f} (streaming target: <= 1.10, peak < 300 MB)")
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)


if __name__ == "__main__":
    main()
