"""Image work without Kafka or S3: photostream's library (the ceiling), a direct libvips program, Pillow and sharp.

Each does the default variant spec (web 1920 and thumb 300 in WebP and JPEG, square 150 in
WebP) for every photo, upright and sRGB, on all cores. The ceiling also reads metadata and
computes the hashes, as the workers do; Pillow and sharp only render.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

from streams.processing import ImageProcessor

CORES = os.cpu_count() or 1
SHARP = Path(__file__).resolve().parent / "sharp"


def ceiling(paths: list[Path]) -> float:
    """Photos per second through ``ImageProcessor`` on a thread pool, several images at once."""
    data = [path.read_bytes() for path in paths]

    async def run() -> float:
        processor = ImageProcessor(ThreadPoolExecutor(CORES))
        window = asyncio.Semaphore(2 * CORES + 2)

        async def one(original: bytes) -> None:
            async with window:
                await processor.process(original)

        started = time.perf_counter()
        await asyncio.gather(*(one(original) for original in data))
        return len(data) / (time.perf_counter() - started)

    return asyncio.run(run())


def _pillow_variants(path: Path) -> int:
    written = 0
    with Image.open(path) as image:
        image.draft("RGB", (1920, 1920))  # JPEG shrink-on-load, as libvips does
        upright = ImageOps.exif_transpose(image).convert("RGB")
    web = upright.copy()
    web.thumbnail((1920, 1920), Image.Resampling.LANCZOS)
    thumb = web.copy()
    thumb.thumbnail((300, 300), Image.Resampling.LANCZOS)
    square = ImageOps.fit(web, (150, 150), Image.Resampling.LANCZOS)  # centre crop: Pillow has no attention crop
    for picture, formats in ((web, ("WEBP", "JPEG")), (thumb, ("WEBP", "JPEG")), (square, ("WEBP",))):
        for fmt in formats:
            out = io.BytesIO()
            if fmt == "WEBP":
                picture.save(out, fmt, quality=82, method=4)
            else:
                picture.save(out, fmt, quality=82, optimize=True, progressive=True)
            written += out.tell()
    return written


def pillow(paths: list[Path]) -> float:
    """Photos per second rendering the same variants with plain Pillow on a thread pool."""
    with ThreadPoolExecutor(CORES) as pool:
        started = time.perf_counter()
        list(pool.map(_pillow_variants, paths))
        return len(paths) / (time.perf_counter() - started)


def _rate_of(command: list[str], stdin: str | None = None) -> float:
    """Run a peer program in its own process; it prints {"photos": n, "seconds": t}."""
    answer = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=1800, check=True)
    result = json.loads(answer.stdout)
    return result["photos"] / result["seconds"]


def sharp(paths: list[Path]) -> float | None:
    """Photos per second with sharp (npm), or None when Node.js or sharp is missing."""
    if not (SHARP / "node_modules" / "sharp").exists():
        return None
    # node from PATH, checked by make bench
    return _rate_of(["node", str(SHARP / "variants.mjs")], "\n".join(str(p) for p in paths))


def direct_libvips(paths: list[Path]) -> float:
    """Photos per second of bench/direct_libvips.py, a minimal program calling libvips directly, in its own process."""
    return _rate_of([sys.executable, str(Path(__file__).resolve().parent / "direct_libvips.py"), *map(str, paths)])
