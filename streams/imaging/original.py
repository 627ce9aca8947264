"""Open an original: tell its format from the bytes, check its size, and decode it within limits.

An original is the file's bytes or, for a large one, the path of a file on disk: either way libvips
reads JPEG, PNG, WebP, TIFF and GIF lazily, with shrink-on-load, so the decoded pixels stay small,
and it reads a file on disk as it decodes rather than copying it into memory first. HEIC/HEIF is
HEVC-coded, which the libvips wheel cannot decode: pillow-heif decodes it once, in a child process
bounded in time (``streams.imaging.heif``), and the variants are cut from that.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyvips

from photostream import media
from schemas.events import FailureReason
from streams.imaging import heif
from streams.imaging.errors import ImageError
from streams.imaging.icc import needs_conversion

# Loaders outside this set (SVG, PDF, ImageMagick, Matlab, ...) are never reached: the gateway only
# accepts these formats, and each extra loader is extra attack surface.
pyvips.block_untrusted_set(True)
# The operation cache holds references to input buffers; a worker sees each original once.
pyvips.cache_set_max(0)

# Loader names without their ``_buffer`` or ``_source`` suffix.
_LOADERS = {"jpegload": "jpeg", "pngload": "png", "webpload": "webp", "tiffload": "tiff", "gifload": "gif"}

# EXIF orientations 5 to 8 turn the image a quarter: width and height swap when shown upright.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on the work one original may cause.

    Attributes:
        max_pixels: Most pixels (width x height of the first frame) accepted; more is ``too_many_pixels``.
            A HEIF grid is also refused when its tiles decode to more pixels than this.
        max_decode_seconds: Wall-clock budget for one decode or render; beyond it the work is
            cancelled (inside libvips, or by killing the HEIF decoder process) and the original
            counts as ``corrupt``.
    """

    max_pixels: int = 100_000_000
    max_decode_seconds: float = 60.0


@dataclass(frozen=True, slots=True, eq=False)
class Original:
    """An opened original, ready for metadata, hashes and variants.

    Attributes:
        source: The file: its bytes, or its path (the file must stay there while the original is used).
        size_bytes: The file's size.
        format: ``jpeg``, ``png``, ``webp``, ``tiff``, ``gif`` or ``heif``.
        width: Stored width in pixels, before orientation.
        height: Stored height in pixels, before orientation.
        orientation: EXIF orientation 1-8 as libvips reads it (1 when absent).
        bands: Colour bands including alpha.
        has_alpha: Whether one band is alpha.
        icc_profile: The embedded ICC profile's bytes, if any.
        limits: The limits this original was opened with.
        exif: The raw EXIF block libvips or libheif found, if any.
        convert_colour: Whether the pixels need converting to sRGB (tagged with another profile).
    """

    source: bytes | Path
    size_bytes: int
    format: str
    width: int
    height: int
    orientation: int
    bands: int
    has_alpha: bool
    icc_profile: bytes | None
    limits: Limits
    exif: bytes | None = None
    convert_colour: bool = False
    _decoded: pyvips.Image | None = field(default=None, repr=False)

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as displayed, after the EXIF orientation."""
        if self.orientation in _TRANSPOSED_ORIENTATIONS:
            return self.height, self.width
        return self.width, self.height

    def reduced(self, width: int, height: int) -> Original:
        """Decode once into an upright sRGB copy in memory that fits ``width`` x ``height``.

        Smaller images are then cut from the copy instead of decoding the file again: for a
        12-megapixel JPEG and the default spec that is one decode (shrunk on load) instead of
        four. Metadata still comes from the original, which knows the full size.

        Raises:
            ImageError: ``corrupt`` when the pixels cannot be decoded in time.
        """
        image = self.thumbnail(width, height)
        return dataclasses.replace(
            self,
            width=image.width,
            height=image.height,
            orientation=1,
            bands=image.bands,
            has_alpha=bool(image.hasalpha()),
            convert_colour=False,  # the copy is sRGB already
            _decoded=image,
        )

    def thumbnail(self, width: int, height: int, *, crop: str = "none") -> pyvips.Image:
        """Return an upright copy in memory that fits ``width`` x ``height``, or fills it when cropping.

        Never upscales. JPEG, WebP and HEIF shrink on load, so a small thumbnail of a large photo
        decodes a fraction of the pixels. The decode runs here, within ``limits``; turning and
        cropping then work on the small copy. Colours are converted to sRGB from an embedded
        profile other than sRGB (CMYK without a profile is converted later, by ``to_srgb8``).

        Args:
            width: Target width (the long side for a box).
            height: Target height.
            crop: ``none`` to fit inside the box, else ``centre`` or ``attention`` to fill it.

        Raises:
            ImageError: ``corrupt`` when the pixels cannot be decoded in time.
        """
        stored_width, stored_height = self.width, self.height
        box_width, box_height = width, height
        if self.orientation in _TRANSPOSED_ORIENTATIONS:
            box_width, box_height = height, width
        if crop != "none":
            # Shrink to cover the box rather than fit in it; the crop below trims the overflow.
            scale = min(1.0, max(box_width / stored_width, box_height / stored_height))
            box_width = max(1, math.ceil(stored_width * scale))
            box_height = max(1, math.ceil(stored_height * scale))
        # Turning and smart crops need random access, which would make libvips decode the
        # whole original up front, outside any time limit; here the shrink stays lazy.
        options: dict[str, Any] = {"height": box_height, "size": "down", "no_rotate": True}
        if self.convert_colour:
            options["output_profile"] = "srgb"
        try:
            if self._decoded is not None:
                lazy = self._decoded.thumbnail_image(box_width, **options)
            else:
                lazy = _thumbnail(self.source, box_width, options)
        except pyvips.Error as error:
            raise ImageError(FailureReason.CORRUPT, f"the image data is damaged: {_vips_detail(error)}") from error
        image = compute(lazy, self.limits, lambda im: im.copy_memory())
        if self.orientation != 1:
            image = image.copy()
            image.set_type(pyvips.GValue.gint_type, "orientation", self.orientation)
            image = image.autorot()
        if crop != "none" and (image.width > width or image.height > height):
            image = image.smartcrop(min(width, image.width), min(height, image.height), interesting=crop)
        return image


def open_original(source: bytes | Path, limits: Limits | None = None) -> Original:
    """Read an original's header, check its format and size, and prepare it for decoding.

    Args:
        source: The whole file, or its path: a large original is read from disk as it decodes.
        limits: Bounds on the work; the defaults when None.

    Returns:
        The opened original. JPEG, PNG, WebP, TIFF and GIF are not decoded yet; HEIF is.

    Raises:
        ImageError: ``unsupported``, ``too_many_pixels`` or ``corrupt``.
        OSError: ``source`` is a path that cannot be read.
    """
    limits = limits or Limits()
    size, head = _size_and_head(source)
    if not size:
        raise ImageError(FailureReason.CORRUPT, "the file is empty")
    if heif.is_heif(head):
        return _open_heif(source, size, limits)
    try:
        if isinstance(source, Path):
            header = pyvips.Image.new_from_source(pyvips.Source.new_from_file(str(source)), "", access="sequential")
        else:
            header = pyvips.Image.new_from_buffer(source, "", access="sequential")
    except pyvips.Error as error:
        if media.sniff(head[: media.SNIFF_BYTES]) is not None:
            raise ImageError(FailureReason.CORRUPT, f"the header is damaged: {_vips_detail(error)}") from error
        raise ImageError(FailureReason.UNSUPPORTED, f"not a {media.ACCEPTED_LABELS} image") from error
    loader = str(_field(header, "vips-loader"))
    fmt = _LOADERS.get(loader.removesuffix("_buffer").removesuffix("_source"))
    if fmt is None:
        raise ImageError(FailureReason.UNSUPPORTED, f"format read by {loader} is not accepted")
    _check_pixels(header.width, header.height, limits)
    orientation = _field(header, "orientation")
    icc = _field(header, "icc-profile-data")
    exif = _field(header, "exif-data")
    return Original(
        source=source,
        size_bytes=size,
        format=fmt,
        width=header.width,
        height=header.height,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1,
        bands=header.bands,
        has_alpha=bool(header.hasalpha()),
        icc_profile=bytes(icc) if icc else None,
        limits=limits,
        exif=bytes(exif) if exif else None,
        convert_colour=needs_conversion(bytes(icc) if icc else None),
    )


def compute(image: pyvips.Image, limits: Limits, write: Callable[[pyvips.Image], Any]) -> Any:
    """Run ``write(image)`` within ``limits.max_decode_seconds``.

    libvips is asked to stop once the time is up, but it only looks between output chunks, and
    a small thumbnail of a large original is a few chunks: the work may finish past the limit.
    Its result is then refused all the same, so the limit means the same on every run.

    Args:
        image: A lazy libvips image.
        limits: The time budget.
        write: What evaluates the image, e.g. ``lambda im: im.webpsave_buffer()``.

    Returns:
        Whatever ``write`` returns.

    Raises:
        ImageError: ``corrupt`` if libvips fails (truncated or malformed data) or runs out of time.
    """
    deadline = time.monotonic() + limits.max_decode_seconds
    timed_out = False

    def on_eval(evaluated: pyvips.Image, _progress: object) -> None:
        nonlocal timed_out
        if time.monotonic() > deadline:
            timed_out = True
            evaluated.set_kill(True)

    image.set_progress(True)
    image.signal_connect("eval", on_eval)
    too_slow = f"decoding took longer than {limits.max_decode_seconds:g} s"
    try:
        result = write(image)
    except pyvips.Error as error:
        if timed_out:
            raise ImageError(FailureReason.CORRUPT, too_slow) from error
        raise ImageError(FailureReason.CORRUPT, f"the image data is damaged: {_vips_detail(error)}") from error
    if time.monotonic() > deadline:
        raise ImageError(FailureReason.CORRUPT, too_slow)
    return result


def _open_heif(source: bytes | Path, size: int, limits: Limits) -> Original:
    header = heif.read_header(source)
    _check_pixels(header.width, header.height, limits)
    if header.decoded_pixels > limits.max_pixels:
        # A grid decodes every tile in full: tiles that all point at one small coded tile can
        # make a few kilobytes decode hundreds of megapixels into a small picture.
        raise ImageError(
            FailureReason.TOO_MANY_PIXELS,
            f"its {header.tiles} grid tiles decode to {header.decoded_pixels / 1e6:.1f} megapixels, "
            f"over the limit of {limits.max_pixels / 1e6:g}",
        )
    pixels = heif.decode(source, limits.max_decode_seconds)
    decoded = pyvips.Image.new_from_array(pixels, interpretation="srgb")
    icc = header.icc_profile
    if icc:
        decoded.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    # libheif applies the container's rotation and mirroring while decoding: the pixels are upright,
    # and any EXIF orientation tag in the file describes the undecoded image.
    return Original(
        source=source,
        size_bytes=size,
        format="heif",
        width=decoded.width,
        height=decoded.height,
        orientation=1,
        bands=decoded.bands,
        has_alpha=decoded.bands in (2, 4),
        icc_profile=icc,
        limits=limits,
        exif=header.exif,
        convert_colour=needs_conversion(icc),
        _decoded=decoded,
    )


def _size_and_head(source: bytes | Path) -> tuple[int, bytes]:
    """The file's size and first bytes, enough to tell its format.

    A path that cannot be read raises ``OSError``: the caller's fault, not the upload's.
    """
    if not isinstance(source, Path):
        return len(source), source[: media.SNIFF_BYTES]
    with source.open("rb") as file:
        return os.fstat(file.fileno()).st_size, file.read(media.SNIFF_BYTES)


def _thumbnail(source: bytes | Path, width: int, options: dict[str, Any]) -> pyvips.Image:
    # A truncated file is an error, not a grey band: the loader's own fail_on must be set, since
    # thumbnail's fail_on does not reach the loader it opens.
    if isinstance(source, Path):
        # A Source, not a file name: libvips would read "[...]" at the end of a name as options.
        stream = pyvips.Source.new_from_file(str(source))
        return pyvips.Image.thumbnail_source(stream, width, option_string="fail_on=truncated", **options)
    return pyvips.Image.thumbnail_buffer(source, width, option_string="fail_on=truncated", **options)


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ImageError(
            FailureReason.TOO_MANY_PIXELS,
            f"{width}x{height} is {pixels / 1e6:.1f} megapixels, over the limit of {limits.max_pixels / 1e6:g}",
        )
    if width < 1 or height < 1:
        raise ImageError(FailureReason.CORRUPT, f"the image declares an empty size {width}x{height}")


def _field(image: pyvips.Image, name: str) -> Any:
    if image.get_typeof(name) == 0:
        return None
    return image.get(name)


def _vips_detail(error: pyvips.Error) -> str:
    # libvips' own message (error.detail) names the loader and what was wrong; the first line is enough.
    lines = (error.detail or error.message or "").strip().splitlines()
    return lines[0] if lines else "libvips gave no detail"
