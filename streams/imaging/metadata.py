"""Metadata of an original: what libvips knows about the pixels, and what the camera wrote in EXIF.

Cameras write odd EXIF: wrong types, zero denominators, text where numbers belong, tags cut
short. Every EXIF field here is best effort: anything missing or malformed becomes None, and no
input makes this module raise.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import exifread

from schemas.events import ImageMetadata
from streams.imaging.icc import icc_description
from streams.imaging.original import Original

log = logging.getLogger(__name__)

# "2024:05:30 15:56:01" (the standard), also seen with dashes and with a "T".
_EXIF_DATETIME = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_UTC_OFFSET = re.compile(r"^\s*([+-])(\d{2}):(\d{2})\s*$")
_EXIF_HEADER = b"Exif\x00\x00"

# exifread's tag objects (``IfdTag``; its module moved between releases) expose ``.values``.
Tags = Mapping[str, Any]


def read_metadata(original: Original, *, keep_gps: bool = False) -> ImageMetadata:
    """Return the metadata of an original.

    Args:
        original: The opened original.
        keep_gps: Whether the photographer opted in to keeping where a photo was taken. When
            False the GPS fields are None whatever the file says.

    Returns:
        The metadata; width and height are as displayed, after the EXIF orientation.
    """
    tags = read_exif(original)
    width, height = original.display_size
    latitude = longitude = altitude = None
    if keep_gps:
        latitude = _gps_coordinate(tags, "GPS GPSLatitude", "GPS GPSLatitudeRef", negative="S")
        longitude = _gps_coordinate(tags, "GPS GPSLongitude", "GPS GPSLongitudeRef", negative="W")
        altitude = _gps_altitude(tags)
    return ImageMetadata(
        width=width,
        height=height,
        format=original.format,
        bands=original.bands,
        has_alpha=original.has_alpha,
        bytes=original.size_bytes,
        megapixels=round(width * height / 1_000_000, 2),
        icc_profile=icc_description(original.icc_profile),
        camera_make=_text(tags, "Image Make"),
        camera_model=_text(tags, "Image Model"),
        lens=_lens(tags),
        iso=_integer(tags, "EXIF ISOSpeedRatings") or _integer(tags, "EXIF PhotographicSensitivity"),
        exposure_time=_number(tags, "EXIF ExposureTime"),
        f_number=_number(tags, "EXIF FNumber"),
        focal_length_mm=_number(tags, "EXIF FocalLength"),
        focal_length_35mm=_integer(tags, "EXIF FocalLengthIn35mmFilm"),
        captured_at=_datetime(tags),
        captured_at_utc_offset=_utc_offset(tags),
        orientation=_integer(tags, "Image Orientation", valid=range(1, 9)) or _vips_orientation(original),
        software=_text(tags, "Image Software"),
        gps_latitude=latitude,
        gps_longitude=longitude,
        gps_altitude=altitude,
    )


def read_exif(original: Original) -> dict[str, Any]:
    """Return the EXIF tags of an original, keyed like exifread (``"EXIF FNumber"``); empty when none.

    exifread reads the file first (it knows JPEG, TIFF, PNG, WebP and HEIC, and seeks to the EXIF
    block, so a file on disk is not read whole); when that finds nothing, the EXIF block libvips or
    libheif extracted is read on its own.
    """
    if isinstance(original.source, Path):
        try:
            with original.source.open("rb") as file:
                tags = _exifread(file)
        except OSError as error:
            log.debug("original unreadable for EXIF: %r", error)
            tags = {}
    else:
        tags = _exifread(io.BytesIO(original.source))
    if not tags and original.exif:
        block = original.exif.removeprefix(_EXIF_HEADER)
        tags = _exifread(io.BytesIO(block))
    return tags


def _exifread(file: BinaryIO) -> dict[str, Any]:
    try:
        tags = exifread.process_file(file, details=False, extract_thumbnail=False)
    except Exception as error:  # noqa: BLE001 - exifread raises anything on malformed files; EXIF is best effort.
        log.debug("EXIF unreadable: %r", error)
        return {}
    return {key: tag for key, tag in tags.items() if hasattr(tag, "values")}


def _values(tags: Tags, key: str) -> list[Any]:
    tag = tags.get(key)
    if tag is None:
        return []
    values = tag.values
    if isinstance(values, str | bytes):
        return [values]
    try:
        return list(values)
    except TypeError:
        return [values]


def _text(tags: Tags, key: str) -> str | None:
    values = _values(tags, key)
    if not values:
        return None
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return _clean(value) if isinstance(value, str) else None


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = "".join(ch for ch in text if ch.isprintable()).strip()
    return cleaned[:256] or None


def _as_float(value: Any) -> float | None:
    # exifread wraps DOUBLE values in one-element tuples.
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    try:
        number = float(Fraction(value)) if not isinstance(value, float) else value
    except (ZeroDivisionError, TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _number(tags: Tags, key: str) -> float | None:
    values = _values(tags, key)
    if not values:
        return None
    number = _as_float(values[0])
    if number is None or number <= 0:
        return None
    return round(number, 6)


def _integer(tags: Tags, key: str, *, valid: range | None = None) -> int | None:
    values = _values(tags, key)
    if not values or not isinstance(values[0], int):
        return None
    value = int(values[0])
    if valid is not None and value not in valid:
        return None
    return value if value > 0 else None


def _lens(tags: Tags) -> str | None:
    model = _text(tags, "EXIF LensModel")
    make = _text(tags, "EXIF LensMake")
    if model and make and not model.lower().startswith(make.lower()):
        return f"{make} {model}"
    return model


def _datetime(tags: Tags) -> str | None:
    for key in ("EXIF DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime"):
        text = _text(tags, key)
        match = _EXIF_DATETIME.match(text or "")
        if match is None:
            continue
        try:
            year, month, day, hour, minute, second = (int(part) for part in match.groups())
            moment = datetime(year, month, day, hour, minute, second)  # EXIF times are local, no zone
        except ValueError:  # February 30th, hour 25, year 0...
            continue
        return moment.isoformat()
    return None


def _utc_offset(tags: Tags) -> str | None:
    for key in ("EXIF OffsetTimeOriginal", "EXIF OffsetTimeDigitized", "EXIF OffsetTime"):
        match = _UTC_OFFSET.match(_text(tags, key) or "")
        if match and int(match.group(2)) <= 14 and int(match.group(3)) < 60:
            return f"{match.group(1)}{match.group(2)}:{match.group(3)}"
    return None


def _gps_coordinate(tags: Tags, key: str, ref_key: str, *, negative: str) -> float | None:
    maybe = [_as_float(v) for v in _values(tags, key)[:3]]
    parts = [p for p in maybe if p is not None and p >= 0]
    if not parts or len(parts) != len(maybe):
        return None
    degrees: float = sum(p / 60**i for i, p in enumerate(parts))
    limit = 90 if "Latitude" in key else 180
    if degrees > limit:
        return None
    ref = (_text(tags, ref_key) or "").upper()[:1]
    return round(-degrees if ref == negative else degrees, 7)


def _gps_altitude(tags: Tags) -> float | None:
    values = _values(tags, "GPS GPSAltitude")
    altitude = _as_float(values[0]) if values else None
    if altitude is None:
        return None
    below_sea = _values(tags, "GPS GPSAltitudeRef")[:1] == [1]
    return round(-altitude if below_sea else altitude, 2)


def _vips_orientation(original: Original) -> int | None:
    return original.orientation if original.orientation != 1 else None
