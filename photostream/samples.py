"""Realistic sample photos for demos, benchmarks and tests: photo-like pixels with camera EXIF.

Each seed gives a different picture (a smooth background, sensor-like noise and a dozen
shapes), so perceptual hashes of different seeds are far apart while a re-encode of one is
close. JPEGs come out at camera-like sizes (a 12-megapixel one is about 3-4 MB).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from PIL import Image, ImageDraw
from PIL.TiffImagePlugin import IFDRational

_CAMERAS = (
    ("Canon", "Canon EOS R6", "RF24-105mm F4 L IS USM"),
    ("NIKON CORPORATION", "NIKON Z 6_2", "NIKKOR Z 24-70mm f/4 S"),
    ("SONY", "ILCE-7M4", "FE 24-70mm F2.8 GM II"),
    ("FUJIFILM", "X-T5", "XF16-80mmF4 R OIS WR"),
    ("Apple", "iPhone 15 Pro", "iPhone 15 Pro back triple camera 6.765mm f/1.78"),
)


@dataclass(frozen=True, slots=True)
class Camera:
    """What a sample photo's EXIF says took it."""

    make: str
    model: str
    lens: str


def camera_for(seed: int) -> Camera:
    """A camera from a fixed set, chosen by seed."""
    return Camera(*_CAMERAS[seed % len(_CAMERAS)])


def sample_photo(
    seed: int,
    *,
    size: tuple[int, int] = (1200, 800),
    quality: int = 90,
    orientation: int | None = None,
    camera: Camera | None = None,
    gps: tuple[float, float, float] | None = None,
) -> bytes:
    """Return a photo-like JPEG with EXIF (camera, lens, exposure, capture time, optional GPS).

    Args:
        seed: Picks the picture, the exposure and, unless ``camera`` is given, the camera.
        size: Stored width and height in pixels.
        quality: JPEG quality.
        orientation: EXIF orientation tag (1-8) to write; none when None.
        camera: The camera to name; one chosen by seed when None.
        gps: Latitude, longitude (signed degrees) and altitude (metres) to write.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.broadcast_to(np.arange(width, dtype=np.float32), (height, width))
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    wave = 127 + 100 * np.sin(x / width * rng.uniform(1, 6) + rng.uniform(0, 6))
    pixels = wave[..., None] * tint + rng.normal(0, 10, (height, width, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = (
            x0,
            y0,
            x0 + int(rng.integers(width // 10, width // 2)),
            y0 + int(rng.integers(height // 10, height // 2)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=_exif(seed, rng, camera or camera_for(seed), orientation, gps))
    return out.getvalue()


def _exif(
    seed: int,
    rng: np.random.Generator,
    camera: Camera,
    orientation: int | None,
    gps: tuple[float, float, float] | None,
) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = camera.make
    exif[0x0110] = camera.model
    exif[0x0131] = "photostream samples"
    if orientation:
        exif[0x0112] = orientation
    details = exif.get_ifd(0x8769)
    taken = datetime(2026, 6, 1, 9, 0) + timedelta(minutes=7 * (seed % 50_000))
    details[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    details[0x9011] = "+02:00"
    # Cameras write these as RATIONAL; a Python float would be written as DOUBLE.
    details[0x829A] = IFDRational(1, int(rng.choice([60, 125, 250, 500, 1000])))
    details[0x829D] = IFDRational(int(rng.choice([18, 28, 40, 56, 80])), 10)
    details[0x8827] = int(rng.choice([100, 200, 400, 800, 1600]))
    details[0x920A] = IFDRational(int(rng.choice([24, 35, 50, 70])), 1)
    details[0xA434] = camera.lens
    if gps is not None:
        latitude, longitude, altitude = gps
        position = exif.get_ifd(0x8825)
        position[1] = "N" if latitude >= 0 else "S"
        position[2] = _degrees(abs(latitude))
        position[3] = "E" if longitude >= 0 else "W"
        position[4] = _degrees(abs(longitude))
        position[5] = 0 if altitude >= 0 else 1
        position[6] = IFDRational(round(abs(altitude) * 100), 100)
    return exif


def _degrees(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600 * 10_000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10_000)
