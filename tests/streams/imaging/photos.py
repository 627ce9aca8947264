"""Synthetic photos for the image library's tests and benchmarks.

Everything here is made in memory from a seed, so tests need no fixture files and each call
returns the same bytes. Pictures are a smooth gradient with a few seeded shapes and a little seeded
noise: photo-like enough for the JPEG encoder, the perceptual hash and smart cropping, and distinct
per seed.

    make_picture(640, 480, seed=3)            a Pillow image (RGB, or any mode Pillow converts to)
    make_photo(640, 480, seed=3, fmt="PNG")   the same picture encoded (JPEG, PNG, WEBP, TIFF, GIF,
                                               HEIF), with optional EXIF, ICC profile and XMP
    landmark_picture()                         an asymmetric picture for orientation checks
    make_oriented_photo(6, landmark_picture()) stored pixels + EXIF orientation that display upright

EXIF is written with Pillow's ``Image.Exif``: pass ``exif={MAKE: "Canon", ISO: 100, ...}`` with the
tag constants below; tags of the Exif sub-IFD are routed there, and ``Fraction`` or ``float`` values
become TIFF rationals. ``gps=(lat, lon, alt)`` takes signed decimal degrees and metres. Pillow's
TIFF writer keeps IFD0 tags only: a TIFF gets no Exif or GPS sub-IFD.

The bad-input writers at the end return bytes a gateway may receive: decompression bombs, truncated
files, text, garbage after a JPEG header, a HEIF grid that decodes one tile hundreds of times.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import pillow_heif
import pyvips
from PIL import Image, ImageCms, ImageDraw, ImageOps
from PIL.TiffImagePlugin import IFDRational

# Tags of IFD0.
MAKE = 0x010F
MODEL = 0x0110
SOFTWARE = 0x0131
ORIENTATION = 0x0112
# Pointers to the sub-IFDs.
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
# Tags of the Exif sub-IFD.
EXPOSURE_TIME = 0x829A
F_NUMBER = 0x829D
ISO = 0x8827
DATETIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
FOCAL_LENGTH = 0x920A
FOCAL_LENGTH_35MM = 0xA405
LENS_MAKE = 0xA433
LENS_MODEL = 0xA434
EXIF_IFD_TAGS = frozenset(
    {
        EXPOSURE_TIME,
        F_NUMBER,
        ISO,
        DATETIME_ORIGINAL,
        OFFSET_TIME_ORIGINAL,
        FOCAL_LENGTH,
        FOCAL_LENGTH_35MM,
        LENS_MAKE,
        LENS_MODEL,
    }
)
# Tags of the GPS sub-IFD.
GPS_LATITUDE_REF = 0x0001
GPS_LATITUDE = 0x0002
GPS_LONGITUDE_REF = 0x0003
GPS_LONGITUDE = 0x0004
GPS_ALTITUDE_REF = 0x0005
GPS_ALTITUDE = 0x0006

# Orientations that turn the picture a quarter: stored width and height are swapped.
TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})

# Colours of the landmark picture.
GREY = (128, 128, 128)
RED = (220, 30, 30)
BLUE = (30, 60, 220)
GREEN = (30, 200, 60)


def make_picture(width: int = 640, height: int = 480, *, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Return a photo-like picture, the same for the same arguments and distinct per seed.

    A diagonal colour gradient, a few seeded ellipses and rectangles, and mild seeded noise.

    Args:
        width: Pixels.
        height: Pixels.
        seed: Chooses the gradient's colours, the shapes and the noise.
        mode: Any Pillow mode the RGB picture converts to (``L``, ``RGBA``, ``CMYK``, ``P``, ...);
            ``RGBA`` gets a seeded, partly transparent alpha band.
    """
    rng = np.random.default_rng(seed)
    start, end = rng.integers(0, 256, size=(2, 3))
    ramp = (np.linspace(0, 1, width)[None, :] + np.linspace(0, 1, height)[:, None]) / 2
    pixels = start + (end - start) * ramp[..., None]
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, x1 = sorted(rng.integers(0, width, size=2))
        y0, y1 = sorted(rng.integers(0, height, size=2))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((int(x0), int(y0), int(x1), int(y1)), fill=colour)
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 6, size=(height, width, 3)).astype(np.int16)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        alpha = Image.fromarray(rng.integers(64, 256, size=(height, width), dtype=np.uint8), "L")
        image.putalpha(alpha)
        return image
    return image if mode == "RGB" else image.convert(mode)


def landmark_picture(width: int = 320, height: int = 240) -> Image.Image:
    """Return a grey picture with a red block top-left, a green one top-right and a blue one bottom-right.

    Each of the eight EXIF orientations shows it differently (no turn or mirror maps it onto
    itself), so a wrongly turned or mirrored render shows in the corner colours. Blocks are a
    quarter of each side.
    """
    image = Image.new("RGB", (width, height), GREY)
    draw = ImageDraw.Draw(image)
    block_w, block_h = width // 4, height // 4
    draw.rectangle((0, 0, block_w - 1, block_h - 1), fill=RED)
    draw.rectangle((width - block_w, 0, width - 1, block_h - 1), fill=GREEN)
    draw.rectangle((width - block_w, height - block_h, width - 1, height - 1), fill=BLUE)
    return image


def make_exif(
    tags: Mapping[int, Any] | None = None,
    *,
    orientation: int | None = None,
    gps: tuple[float, float, float] | None = None,
) -> Image.Exif:
    """Build an ``Image.Exif`` from tag numbers, an orientation and a GPS position.

    Args:
        tags: Tag number to value. Tags in ``EXIF_IFD_TAGS`` go to the Exif sub-IFD, the rest to
            IFD0. ``Fraction`` and ``float`` values become rationals; anything else is written as
            given, so a string where a number belongs stays a string.
        orientation: The Orientation tag (1-8, or any int to test bad values).
        gps: Latitude and longitude in signed decimal degrees (negative is S or W), altitude in
            metres (negative is below sea level).
    """
    exif = Image.Exif()
    for tag, value in (tags or {}).items():
        target = exif.get_ifd(EXIF_IFD) if tag in EXIF_IFD_TAGS else exif
        target[tag] = _rational(value) if isinstance(value, Fraction | float) else value
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if gps is not None:
        latitude, longitude, altitude = gps
        gps_ifd = exif.get_ifd(GPS_IFD)
        gps_ifd[GPS_LATITUDE_REF] = "S" if latitude < 0 else "N"
        gps_ifd[GPS_LATITUDE] = _degrees_minutes_seconds(abs(latitude))
        gps_ifd[GPS_LONGITUDE_REF] = "W" if longitude < 0 else "E"
        gps_ifd[GPS_LONGITUDE] = _degrees_minutes_seconds(abs(longitude))
        gps_ifd[GPS_ALTITUDE_REF] = b"\x01" if altitude < 0 else b"\x00"
        gps_ifd[GPS_ALTITUDE] = _rational(abs(altitude))
    return exif


def encode(
    image: Image.Image,
    fmt: str = "JPEG",
    *,
    exif: Image.Exif | None = None,
    icc: bytes | None = None,
    xmp: bytes | None = None,
    quality: int = 90,
) -> bytes:
    """Encode a Pillow image in ``fmt`` (any format Pillow writes), with optional EXIF, ICC profile and XMP.

    ``fmt="HEIF"`` encodes with pillow-heif (HEVC), which needs its x265 encoder.
    """
    options: dict[str, Any] = {}
    if exif is not None:
        # As bytes: Pillow's PNG writer drops an Image.Exif whose IFD0 is empty (sub-IFD tags only).
        options["exif"] = exif.tobytes()
    if icc is not None:
        options["icc_profile"] = icc
    if xmp is not None:
        options["xmp"] = xmp
    if fmt == "HEIF":
        out = io.BytesIO()
        pillow_heif.from_pillow(image).save(out, quality=quality, **options)
        return out.getvalue()
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def make_photo(
    width: int = 640,
    height: int = 480,
    *,
    seed: int = 0,
    fmt: str = "JPEG",
    exif: Mapping[int, Any] | None = None,
    orientation: int | None = None,
    gps: tuple[float, float, float] | None = None,
    mode: str = "RGB",
    icc: bytes | None = None,
    xmp: bytes | None = None,
    quality: int = 90,
) -> bytes:
    """Return an encoded synthetic photo; see ``make_picture``, ``make_exif`` and ``encode`` for the arguments.

    The pixels are stored as given: ``orientation`` only writes the tag (use ``make_oriented_photo``
    for pixels that display upright under it).
    """
    has_exif = exif is not None or orientation is not None or gps is not None
    exif_block = make_exif(exif, orientation=orientation, gps=gps) if has_exif else None
    picture = make_picture(width, height, seed=seed, mode=mode)
    return encode(picture, fmt, exif=exif_block, icc=icc, xmp=xmp, quality=quality)


def stored_for_orientation(upright: Image.Image, orientation: int) -> Image.Image:
    """Return the pixels a camera stores so that EXIF ``orientation`` displays ``upright``.

    Applies the inverse of the transform that ``ImageOps.exif_transpose`` (the EXIF specification's
    reading) applies for ``orientation``, and checks the round trip with ``exif_transpose`` itself.
    """
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    stored = upright.copy() if inverse is None else upright.transpose(inverse)
    tagged = stored.copy()
    tagged.getexif()[ORIENTATION] = orientation
    shown = ImageOps.exif_transpose(tagged)
    if shown.size != upright.size or shown.tobytes() != upright.tobytes():
        raise AssertionError(f"stored_for_orientation({orientation}) does not display upright")
    return stored


def make_oriented_photo(
    orientation: int,
    upright: Image.Image | None = None,
    *,
    fmt: str = "JPEG",
    quality: int = 95,
) -> bytes:
    """Return ``upright`` (default: ``landmark_picture()``) stored for ``orientation``, with the tag."""
    upright = landmark_picture() if upright is None else upright
    stored = stored_for_orientation(upright, orientation)
    return encode(stored, fmt, exif=make_exif(orientation=orientation), quality=quality)


def srgb_profile() -> bytes:
    """Return Pillow's (littleCMS's) built-in sRGB ICC profile."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def display_p3_profile() -> bytes:
    """Return libvips' built-in Display P3 ICC profile (a wider gamut than sRGB)."""
    return bytes(pyvips.Operation.call("profile_load", "p3"))


# Bad and unusual inputs.


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """Return one PNG chunk with its length and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def decompression_bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """Return a valid-looking PNG whose header declares ``width`` x ``height`` RGB pixels in a tiny file.

    The IDAT holds only a few rows: a decoder that trusts the header allocates gigabytes.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 1024)) * 4)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def truncated_jpeg(width: int = 640, height: int = 480, *, keep: float = 0.5, seed: int = 0) -> bytes:
    """Return a JPEG cut after ``keep`` of its bytes: the header is intact, the scan ends early."""
    data = make_photo(width, height, seed=seed)
    return data[: int(len(data) * keep)]


def text_named_jpeg() -> bytes:
    """Return plain text, as uploaded under a ``.jpg`` name."""
    return b"This is not a photo, just a text file someone named holiday.jpg.\n" * 4


def jpeg_header_then_garbage(size: int = 4096, *, seed: int = 0) -> bytes:
    """Return a JPEG start-of-image marker and APP0 start followed by seeded random bytes."""
    rng = np.random.default_rng(seed)
    return b"\xff\xd8\xff\xe0" + rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()


def cmyk_jpeg(width: int = 320, height: int = 240, *, seed: int = 0) -> bytes:
    """Return a CMYK JPEG (as print workflows export), without an ICC profile."""
    return make_photo(width, height, seed=seed, mode="CMYK")


def solid_cmyk_jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """Return a CMYK JPEG of one colour, converted from ``rgb`` by Pillow's naive formula."""
    return encode(Image.new("RGB", size, rgb).convert("CMYK"), "JPEG", quality=95)


def rgba16_png(width: int = 160, height: int = 120, *, seed: int = 0) -> bytes:
    """Return a 16-bit-per-channel RGBA PNG: a gradient with a half-transparent right half.

    Pillow has no 16-bit RGBA mode, so libvips writes it.
    """
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 65535, width, dtype=np.float64)[None, :].repeat(height, axis=0)
    pixels = np.empty((height, width, 4), dtype=np.uint16)
    pixels[..., 0] = ramp
    pixels[..., 1] = ramp[:, ::-1]
    pixels[..., 2] = rng.integers(0, 65536, size=(height, width), dtype=np.uint16)
    pixels[..., 3] = 65535
    pixels[:, width // 2 :, 3] = 32768
    image = pyvips.Image.new_from_array(pixels, interpretation="rgb16")
    return bytes(image.pngsave_buffer(bitdepth=16))


def animated_gif(
    colours: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE),
    size: tuple[int, int] = (64, 48),
) -> bytes:
    """Return an animated GIF with one solid frame per colour (the first frame is ``colours[0]``)."""
    frames = [Image.new("RGB", size, colour) for colour in colours]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def heif_with_dangling_property_association(width: int = 64, height: int = 48, *, seed: int = 0) -> bytes:
    """Return a HEIF whose ``ipma`` box gives the image's properties to an item that does not exist.

    The container parses, but its primary image has no size or codec configuration: libheif
    lists no readable image in it.
    """
    data = bytearray(encode(make_picture(width, height, seed=seed), "HEIF"))
    box = data.index(b"ipma")
    # ipma (version 0): type, version and flags (4), entry count (4), then the first item ID (2).
    data[box + 12 : box + 14] = b"\xff\xff"
    return bytes(data)


def heif_grid_of_one_tile(
    tile_size: int, columns: int, rows: int, *, output: tuple[int, int] | None = None, seed: int = 0
) -> bytes:
    """Return a HEIF whose primary image is a grid of ``columns`` x ``rows`` tiles that all point at one coded tile.

    The file is a few kilobytes whatever the grid (one noise tile of ``tile_size`` squared, coded
    once), but the decoder decodes every tile: 31 x 31 tiles of 320 px are 98 megapixels to
    decode, many seconds of libheif work. ``output`` declares a smaller picture than the tiles
    cover; the decoder still decodes every tile in full. Written box by box (ISO/IEC 23008-12):
    pillow-heif cannot write a grid with repeated tiles.
    """
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 256, (tile_size, tile_size, 3), dtype=np.uint8), "RGB")
    single = encode(noise, "HEIF", quality=50)
    hvcc, coded = _hvcc_and_coded_data(single)
    width, height = output or (columns * tile_size, rows * tile_size)
    grid, tile, tiles = 1, 2, columns * rows
    grid_descriptor = struct.pack(">BBBBII", 0, 1, rows - 1, columns - 1, width, height)  # flags 1: 32-bit sizes
    items = _full_box(b"infe", 2, struct.pack(">HH", grid, 0) + b"grid\0") + _full_box(
        b"infe", 2, struct.pack(">HH", tile, 0) + b"hvc1\0"
    )
    properties = _box(b"ipco", hvcc + _ispe(tile_size, tile_size) + _ispe(width, height))
    # ipma: the grid gets property 3 (its size); the tile 1 (hvcC, essential) and 2 (its size).
    associations = struct.pack(">I", 2) + struct.pack(">HBB", grid, 1, 3) + struct.pack(">HBBB", tile, 2, 0x81, 2)

    def meta(mdat_offset: int) -> bytes:
        # iloc v1: 4-byte offsets and lengths; the grid's descriptor in idat, the tile in mdat.
        locations = struct.pack(">BBH", 0x44, 0x00, 2)
        locations += struct.pack(">HHHHII", grid, 1, 0, 1, 0, len(grid_descriptor))
        locations += struct.pack(">HHHHII", tile, 0, 0, 1, mdat_offset, len(coded))
        return _full_box(
            b"meta",
            0,
            _full_box(b"hdlr", 0, bytes(4) + b"pict" + bytes(12) + b"\0")
            + _full_box(b"pitm", 0, struct.pack(">H", grid))
            + _full_box(b"iinf", 0, struct.pack(">H", 2) + items)
            + _full_box(b"iref", 0, _box(b"dimg", struct.pack(">HH", grid, tiles) + struct.pack(">H", tile) * tiles))
            + _box(b"iprp", properties + _full_box(b"ipma", 0, associations))
            + _full_box(b"iloc", 1, locations)
            + _box(b"idat", grid_descriptor),
        )

    head = _box(b"ftyp", b"heic" + bytes(4) + b"mif1heic")
    mdat_offset = len(head) + len(meta(0)) + 8  # the meta box's size does not depend on the offset
    return head + meta(mdat_offset) + _box(b"mdat", coded)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, body: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24) + body)


def _ispe(width: int, height: int) -> bytes:
    return _full_box(b"ispe", 0, struct.pack(">II", width, height))


def _children(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    boxes = {}
    while start < end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        boxes.setdefault(kind, (start, size))
        start += size
    return boxes


def _hvcc_and_coded_data(single: bytes) -> tuple[bytes, bytes]:
    """The hvcC box and the coded bytes of a HEIF holding one image (its mdat holds nothing else)."""
    top = _children(single, 0, len(single))
    meta_at, meta_size = top[b"meta"]
    iprp_at, iprp_size = _children(single, meta_at + 12, meta_at + meta_size)[b"iprp"]
    ipco_at, ipco_size = _children(single, iprp_at + 8, iprp_at + iprp_size)[b"ipco"]
    hvcc_at, hvcc_size = _children(single, ipco_at + 8, ipco_at + ipco_size)[b"hvcC"]
    mdat_at, mdat_size = top[b"mdat"]
    return single[hvcc_at : hvcc_at + hvcc_size], single[mdat_at + 8 : mdat_at + mdat_size]


def tiny_png() -> bytes:
    """Return a 1x1 RGB PNG."""
    return encode(Image.new("RGB", (1, 1), RED), "PNG")


def noisy_png(width: int = 3000, height: int = 3000, *, seed: int = 0) -> bytes:
    """Return a PNG of uniform random noise: every pixel must be read and unfiltered, so decoding takes real time.

    Noise does not compress, so the deflate stream is stored (level 0): cheap to write, as slow to decode.
    """
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG", compress_level=0)
    return out.getvalue()


def _rational(value: Fraction | float | int) -> IFDRational:
    fraction = Fraction(value).limit_denominator(1_000_000)
    return IFDRational(fraction.numerator, fraction.denominator)


def _degrees_minutes_seconds(degrees: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    whole = int(degrees)
    minutes_float = (degrees - whole) * 60
    minutes = int(minutes_float)
    seconds = round((minutes_float - minutes) * 60, 4)
    return IFDRational(whole, 1), IFDRational(minutes, 1), _rational(seconds)
