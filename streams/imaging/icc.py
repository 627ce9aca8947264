"""ICC colour profiles: what one calls itself, and whether pixels tagged with it need converting."""

from __future__ import annotations

import io

from PIL import ImageCms


def icc_description(profile: bytes | None) -> str | None:
    """Return an ICC profile's description (e.g. ``sRGB IEC61966-2.1``), or None if absent or unreadable."""
    if not profile:
        return None
    try:
        description = ImageCms.ImageCmsProfile(io.BytesIO(profile)).profile.profile_description
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None
    cleaned = "".join(ch for ch in description or "" if ch.isprintable()).strip()
    return cleaned[:256] or None


def needs_conversion(profile: bytes | None) -> bool:
    """Whether pixels tagged with ``profile`` must be converted to reach sRGB.

    Untagged pixels are taken as sRGB, as browsers do, and so are pixels tagged with an sRGB
    profile: converting them would change nothing but costs libvips a full colour transform
    (about four times the decode of a 12-megapixel JPEG).
    """
    if not profile:
        return False
    description = icc_description(profile)
    return not (description or "").lower().startswith("srgb")
