"""Web variants: upright, sRGB, metadata stripped, never upscaled.

A variant spec names a size and the formats to encode it in. Each spec is cut from the original
on its own (libvips shrinks on load from the compressed bytes, so small sizes are cheap) and can
run in its own thread; its formats are encoded from one in-memory copy.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Literal

import pyvips

from photostream import media
from streams.imaging.original import Original, compute
from streams.imaging.pixels import to_srgb8

# The names of media.VARIANT_FORMATS, spelled out for type checkers and the WORKER_VARIANTS parser.
Format = Literal["webp", "jpeg", "avif"]
Crop = Literal["none", "centre", "attention"]

_VARIANT_NAMES = tuple(fmt.name for fmt in media.VARIANT_FORMATS)


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One size of an image, encoded in one or more formats.

    Attributes:
        name: The variant's name, part of its object key (``thumb``, ``web``, ...).
        width: Box width; the long side when ``height`` equals it.
        height: Box height.
        formats: Encodings to produce, each a separate object.
        crop: ``none`` fits the image inside the box; ``centre`` or ``attention`` fill it and crop.
        quality: Encoder quality, 1-100.
    """

    name: str
    width: int
    height: int
    formats: tuple[Format, ...] = ("webp", "jpeg")
    crop: Crop = "none"
    quality: int = 82

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"variant name {self.name!r} must be letters, digits, '-' or '_'")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"variant {self.name!r} needs a positive size, got {self.width}x{self.height}")
        if not self.formats or any(fmt not in _VARIANT_NAMES for fmt in self.formats):
            raise ValueError(f"variant {self.name!r} formats must be among {sorted(_VARIANT_NAMES)}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"variant {self.name!r} quality must be 1-100")


DEFAULT_VARIANTS: tuple[VariantSpec, ...] = (
    VariantSpec("web", 1920, 1920, ("webp", "jpeg")),
    VariantSpec("thumb", 300, 300, ("webp", "jpeg")),
    VariantSpec("square", 150, 150, ("webp",), crop="attention"),
)
"""The default spec, largest first so the heaviest work starts earliest."""


@dataclass(frozen=True, slots=True)
class RenderedVariant:
    """One encoded variant.

    Attributes:
        variant: The spec's name.
        format: ``webp``, ``jpeg`` or ``avif``.
        content_type: Its media type.
        extension: The file extension for its object key, without the dot.
        width: Pixels.
        height: Pixels.
        data: The encoded bytes, with no metadata.
        sha256: Hex digest of ``data``.
    """

    variant: str
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    data: bytes = field(repr=False)
    sha256: str


def variant_count(specs: tuple[VariantSpec, ...]) -> int:
    """Return how many objects a spec produces per image (one per variant and format)."""
    return sum(len(spec.formats) for spec in specs)


def render(original: Original, spec: VariantSpec) -> list[RenderedVariant]:
    """Render one spec of ``original`` in each of its formats, decoding it once.

    Raises:
        ImageError: ``corrupt`` when the pixels cannot be decoded in time.
    """
    opaque_only = all(fmt == "jpeg" for fmt in spec.formats)
    image = to_srgb8(original.thumbnail(spec.width, spec.height, crop=spec.crop), keep_alpha=not opaque_only)
    rendered = []
    for fmt in spec.formats:
        data: bytes = compute(image, original.limits, functools.partial(_encode, fmt=fmt, quality=spec.quality))
        rendered.append(
            RenderedVariant(
                variant=spec.name,
                format=fmt,
                content_type=media.content_type(fmt),
                extension=media.extension(fmt),
                width=image.width,
                height=image.height,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    return rendered


def _encode(image: pyvips.Image, fmt: str, quality: int) -> bytes:
    # keep="none" drops EXIF (GPS, serial numbers), XMP, IPTC and ICC: the pixels are sRGB, which
    # is what browsers assume without a profile.
    if fmt == "jpeg":
        if image.hasalpha():
            image = image.flatten(background=[255, 255, 255])
        return bytes(
            image.jpegsave_buffer(Q=quality, keep="none", optimize_coding=True, interlace=True, subsample_mode="auto")
        )
    if fmt == "webp":
        # Plain chroma subsampling: "sharp YUV" (smart_subsample) cost a third of the throughput
        # for a difference few photos show.
        return bytes(image.webpsave_buffer(Q=quality, keep="none", effort=4))
    return bytes(image.heifsave_buffer(Q=quality, keep="none", compression="av1", effort=4))
