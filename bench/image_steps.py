"""Where one photo's image work goes, step by step, on one core: the default spec's outputs through libvips.

The library, the direct-libvips program, sharp and Pillow all make the same outputs with the same
encoders (libwebp at effort 4, libjpeg-turbo or mozjpeg's baseline), so whichever step dominates here
bounds how far apart their rates can be. The web variant's WebP is also encoded at lower efforts and
through Pillow, to price what a change of the spec, rather than of the code, would buy.

    .venv/bin/python -m bench.image_steps [--photos 8]     # prints a markdown table
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one core, before pyvips loads libvips

import pyvips
from PIL import Image

from bench.photoset import photo_set

pyvips.cache_set_max(0)


def _pillow_webp(image: pyvips.Image) -> bytes:
    picture = Image.frombytes("RGB", (image.width, image.height), image.write_to_memory())
    out = io.BytesIO()
    picture.save(out, "WEBP", quality=82, method=4)
    return out.getvalue()


def _webp(image: pyvips.Image, effort: int = 4) -> bytes:
    return bytes(image.webpsave_buffer(Q=82, effort=effort, keep="none"))


def _jpeg(image: pyvips.Image) -> bytes:
    return bytes(image.jpegsave_buffer(Q=82, keep="none", optimize_coding=True, interlace=True))


def _decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.thumbnail_buffer(data, 1920, height=1920, size="down").copy_memory()


def _resize(image: pyvips.Image, side: int, crop: str = "none") -> pyvips.Image:
    return image.thumbnail_image(side, height=side, size="down", crop=crop).copy_memory()


class Steps:
    """Each step's milliseconds and output bytes, over every photo."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}
        self.bytes: dict[str, list[int]] = {}

    def time(self, name: str, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(*args)`` as the step ``name``; return its result."""
        started = time.perf_counter()
        result = work(*args)
        self.ms.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        if isinstance(result, bytes):
            self.bytes.setdefault(name, []).append(len(result))
        return result

    def photo(self, data: bytes) -> None:
        """Every step of one photo: the spec's outputs, then the web WebP's alternatives (in parentheses)."""
        web = self.time("decode, shrunk on load, to 1920 px", _decode, data)
        self.time("web WebP, effort 4 (the spec)", _webp, web)
        self.time("web JPEG, progressive, optimised", _jpeg, web)
        thumb = self.time("thumb: resize to 300 px", _resize, web, 300)
        self.time("thumb WebP", _webp, thumb)
        self.time("thumb JPEG", _jpeg, thumb)
        square = self.time("square: attention crop to 150 px", _resize, web, 150, "attention")
        self.time("square WebP", _webp, square)
        for effort in (3, 2):
            self.time(f"(web WebP at effort {effort})", _webp, web, effort)
        self.time("(web WebP, effort 4, through Pillow)", _pillow_webp, web)


def main() -> None:
    """Time each step on every photo of the bench's photo set and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    options = parser.parse_args()
    steps = Steps()
    for path in photo_set(options.photos).paths:
        steps.photo(path.read_bytes())
    spec = [name for name in steps.ms if not name.startswith("(")]
    total = sum(statistics.median(steps.ms[name]) for name in spec)
    print(f"| step ({options.photos} photos of 12 MP, median) | ms | share of the spec | bytes |")
    print("|---|---|---|---|")
    for name, values in steps.ms.items():
        share = f"{statistics.median(values) / total:.0%}" if name in spec else ""
        size = f"{statistics.median(steps.bytes[name]):,.0f}" if name in steps.bytes else ""
        print(f"| {name} | {statistics.median(values):.1f} | {share} | {size} |")
    print(f"| the spec's steps together | {total:.1f} | 100% | |")


if __name__ == "__main__":
    main()
