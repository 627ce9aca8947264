"""One original in, everything the pipeline derives from it out: metadata, fingerprints, variants.

Still no Kafka here. The image library's calls are CPU-bound and release the GIL, so each runs on
a thread pool, never on the event loop: one task opens the original, then metadata with
fingerprints and every variant spec run side by side. Several images processed at once (see
``streams.ordered``) keep every core busy even when one photographer sends them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from schemas.events import ImageMetadata
from streams.imaging import (
    DEFAULT_VARIANTS,
    Fingerprints,
    Limits,
    Original,
    RenderedVariant,
    VariantSpec,
    fingerprint,
    open_original,
    read_metadata,
    render,
)
from streams.imaging.hashes import HASH_SOURCE_PX

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timings:
    """Milliseconds spent per step; render is wall-clock for all variants, which run in parallel."""

    decode_ms: int
    metadata_ms: int
    hash_ms: int
    render_ms: int


@dataclass(frozen=True, slots=True)
class Processed:
    """Everything derived from one original.

    Attributes:
        metadata: What the pixels and EXIF say.
        fingerprints: Perceptual hash and placeholder.
        variants: Every rendered variant, in spec order then format order.
        timings: Time per step.
    """

    metadata: ImageMetadata
    fingerprints: Fingerprints
    variants: tuple[RenderedVariant, ...]
    timings: Timings


class ImageProcessor:
    """Runs the image library on an executor, with one spec and one set of limits."""

    def __init__(
        self,
        executor: Executor,
        *,
        variants: tuple[VariantSpec, ...] = DEFAULT_VARIANTS,
        limits: Limits | None = None,
    ) -> None:
        """Create the processor.

        Args:
            executor: Where CPU work runs; a thread pool (libvips and Pillow release the GIL).
            variants: The variant spec.
            limits: Pixel and time bounds per original.
        """
        self._executor = executor
        self.variants = variants
        self.limits = limits or Limits()

    async def process(self, source: bytes | Path, *, keep_gps: bool = False) -> Processed:
        """Derive metadata, fingerprints and variants from an original.

        Args:
            source: The original file's bytes, or its path (it must stay there until this returns).
            keep_gps: Whether GPS coordinates stay in the metadata (variants never carry any).

        Raises:
            ImageError: The original is corrupt, unsupported or too large.
        """
        original, open_ms = await self._timed(open_original, source, self.limits)
        # One decode, shrunk on load to the largest size anything needs; the rest is cut from it.
        side = max(HASH_SOURCE_PX, *(max(spec.width, spec.height) for spec in self.variants))
        working, reduce_ms = await self._timed(original.reduced, side, side)
        decode_ms = open_ms + reduce_ms
        analysis = self._timed(_analyse, original, working, keep_gps)
        render_started = time.perf_counter()
        renders = [self._timed(render, working, spec) for spec in self.variants]
        results = await asyncio.gather(analysis, *renders, return_exceptions=True)
        render_ms = _ms(time.perf_counter() - render_started)
        # Wait for every thread before raising, so no work on this original outlives the call.
        for result in results:
            if isinstance(result, BaseException):
                raise result
        (metadata, fingerprints, metadata_ms, hash_ms), _ = cast(tuple[_Analysis, int], results[0])
        rendered = cast(list[tuple[list[RenderedVariant], int]], results[1:])
        return Processed(
            metadata=metadata,
            fingerprints=fingerprints,
            variants=tuple(variant for variants, _ in rendered for variant in variants),
            timings=Timings(decode_ms=decode_ms, metadata_ms=metadata_ms, hash_ms=hash_ms, render_ms=render_ms),
        )

    async def _timed(self, function: Callable[..., T], *args: object) -> tuple[T, int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _call_timed, function, args)


def _call_timed(function: Callable[..., T], args: tuple[object, ...]) -> tuple[T, int]:
    started = time.perf_counter()
    result = function(*args)
    return result, _ms(time.perf_counter() - started)


_Analysis = tuple[ImageMetadata, Fingerprints, int, int]


def _analyse(original: Original, working: Original, keep_gps: bool) -> _Analysis:
    started = time.perf_counter()
    metadata = read_metadata(original, keep_gps=keep_gps)
    hashed = time.perf_counter()
    fingerprints = fingerprint(working)
    return metadata, fingerprints, _ms(hashed - started), _ms(time.perf_counter() - hashed)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
