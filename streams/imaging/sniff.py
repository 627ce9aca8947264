"""Tell an image's format from its first bytes, never from its name or headers.

Pure code: bytes in, a content type (or None) out.
"""

from __future__ import annotations

# How many leading bytes `sniff` needs to decide.
SNIFF_BYTES = 32

# ISO-BMFF brands of HEIF still images (HEVC-coded ones first) and of AVIF.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}

SUPPORTED_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/tiff",
    "image/gif",
    "image/heic",
    "image/heif",
)


def _ftyp_brands(head: bytes) -> set[bytes]:
    """Major and compatible brands of an ISO-BMFF ``ftyp`` box at the start of ``head``."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return set()
    size = int.from_bytes(head[0:4], "big")
    end = min(size if size >= 16 else 16, len(head))
    brands = {head[8:12]}
    brands.update(head[offset : offset + 4] for offset in range(16, end - 3, 4))
    return brands


def sniff(head: bytes) -> str | None:
    """Return the image content type the leading bytes show, or None if not a supported image.

    Args:
        head: the first bytes of the file; ``SNIFF_BYTES`` are enough.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    brands = _ftyp_brands(head)
    if brands & _HEIC_BRANDS:
        return "image/heic"
    if brands & _HEIF_BRANDS:
        return "image/heif"
    return None
