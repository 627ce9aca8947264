"""Bring any decoded libvips image to what the web expects: 8-bit sRGB, alpha optional."""

from __future__ import annotations

import pyvips


def to_srgb8(image: pyvips.Image, *, keep_alpha: bool = True) -> pyvips.Image:
    """Return ``image`` as 8-bit sRGB: three bands, plus alpha when present and kept.

    ``colourspace`` converts greyscale, 16-bit, CMYK and Lab images (CMYK through libvips'
    built-in profile when the file has none); without ``keep_alpha`` transparency is
    flattened onto white.
    """
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    expected = 4 if image.hasalpha() else 3
    if image.bands > expected:
        image = image.extract_band(0, n=expected)
    if image.hasalpha() and not keep_alpha:
        image = image.flatten(background=[255, 255, 255])
    return image
