"""Content fingerprints: a 64-bit perceptual hash for near-duplicates, a BlurHash placeholder for UIs."""

from __future__ import annotations

from dataclasses import dataclass

import blurhash
import imagehash
import numpy as np
from PIL import Image

from streams.imaging.original import Original, compute
from streams.imaging.pixels import to_srgb8

# phash looks at a 32x32 greyscale; 256 px keeps the downscale well filtered and stays cheap
# (JPEG shrink-on-load decodes at 1/8 scale for most photos).
HASH_SOURCE_PX = 256
# BlurHash components along the long side; 4x3 is what most UIs use for landscape photos.
_BLURHASH_COMPONENTS = 4
_PLACEHOLDER_PX = 32


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Hashes of an image's pixels.

    Attributes:
        phash: imagehash's DCT perceptual hash, 64 bits as 16 hex digits.
        placeholder: A BlurHash string, about 30 characters.
    """

    phash: str
    placeholder: str


def fingerprint(original: Original) -> Fingerprints:
    """Decode a small upright copy of ``original`` and hash it.

    Raises:
        ImageError: ``corrupt`` when the pixels cannot be decoded (this is the first full decode).
    """
    small = to_srgb8(original.thumbnail(HASH_SOURCE_PX, HASH_SOURCE_PX), keep_alpha=False)
    pixels = compute(small, original.limits, lambda image: image.numpy())
    picture = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    phash = str(imagehash.phash(picture))
    width, height = picture.size
    scale = _PLACEHOLDER_PX / max(width, height)
    tiny = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    x_components, y_components = (_BLURHASH_COMPONENTS, 3) if width >= height else (3, _BLURHASH_COMPONENTS)
    return Fingerprints(phash=phash, placeholder=blurhash.encode(np.asarray(tiny), x_components, y_components))


def hamming_distance(first: str, second: str) -> int:
    """Return how many of the 64 bits differ between two hex perceptual hashes."""
    return (int(first, 16) ^ int(second, 16)).bit_count()
