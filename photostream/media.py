"""The image formats the pipeline knows: which uploads it accepts, how each is told from its bytes.

One table, standard library only, so the gateway and the sinks share it with the worker without
loading an image engine. An upload's format is judged from its first bytes (``sniff``), never from
its name or headers. Variants are encoded in ``VARIANT_FORMATS``; the first extension of a format
is the one its object keys end in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# How many leading bytes `sniff` needs to decide.
SNIFF_BYTES = 32

# ISO-BMFF brands of HEIF still images: HEVC-coded ones (HEIC) and any codec (HEIF).
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}


@dataclass(frozen=True, slots=True)
class Format:
    """One image format.

    Attributes:
        name: Its short name, as variant specs and events spell it (``jpeg``, ``webp``, ...).
        label: How a person names it in a message; HEIC and HEIF share ``HEIC/HEIF``.
        content_type: Its media type.
        extensions: File name extensions without the dot; object keys use the first.
        magic: Whether leading bytes are in this format; None for one never accepted as an upload.
    """

    name: str
    label: str
    content_type: str
    extensions: tuple[str, ...]
    magic: Callable[[bytes], bool] | None = field(default=None, repr=False, compare=False)

    @property
    def extension(self) -> str:
        """The extension object keys end in, without the dot."""
        return self.extensions[0]


def _ftyp_brands(head: bytes) -> set[bytes]:
    """Major and compatible brands of an ISO-BMFF ``ftyp`` box at the start of ``head``."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return set()
    size = int.from_bytes(head[0:4], "big")
    end = min(size if size >= 16 else 16, len(head))
    brands = {head[8:12]}
    brands.update(head[offset : offset + 4] for offset in range(16, end - 3, 4))
    return brands


JPEG = Format("jpeg", "JPEG", "image/jpeg", ("jpg", "jpeg"), lambda head: head.startswith(b"\xff\xd8\xff"))
PNG = Format("png", "PNG", "image/png", ("png",), lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"))
WEBP = Format("webp", "WebP", "image/webp", ("webp",), lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP")
TIFF = Format("tiff", "TIFF", "image/tiff", ("tif", "tiff"), lambda head: head[:4] in (b"II*\x00", b"MM\x00*"))
GIF = Format("gif", "GIF", "image/gif", ("gif",), lambda head: head[:6] in (b"GIF87a", b"GIF89a"))
HEIC = Format("heic", "HEIC/HEIF", "image/heic", ("heic",), lambda head: bool(_ftyp_brands(head) & _HEIC_BRANDS))
HEIF = Format("heif", "HEIC/HEIF", "image/heif", ("heif",), lambda head: bool(_ftyp_brands(head) & _HEIF_BRANDS))
AVIF = Format("avif", "AVIF", "image/avif", ("avif",))

ACCEPTED: tuple[Format, ...] = (JPEG, PNG, WEBP, TIFF, GIF, HEIC, HEIF)
"""What an upload may be, in the order ``sniff`` tries them (HEIC files often carry HEIF brands too)."""

VARIANT_FORMATS: tuple[Format, ...] = (WEBP, JPEG, AVIF)
"""What variants may be encoded in."""

_BY_NAME = {fmt.name: fmt for fmt in (*ACCEPTED, *VARIANT_FORMATS)}


def _spoken_list(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


ACCEPTED_LABELS = _spoken_list(list(dict.fromkeys(fmt.label for fmt in ACCEPTED)))
"""The accepted formats for a message: ``JPEG, PNG, WebP, TIFF, GIF or HEIC/HEIF``."""


def sniff(head: bytes) -> Format | None:
    """Return the accepted format the leading bytes show, or None if they are not one.

    Args:
        head: The first bytes of the file; ``SNIFF_BYTES`` are enough.
    """
    for fmt in ACCEPTED:
        if fmt.magic is not None and fmt.magic(head):
            return fmt
    return None


def content_type(name: str) -> str:
    """The media type of the format called ``name``; ``image/{name}`` for one this table does not know."""
    fmt = _BY_NAME.get(name)
    return fmt.content_type if fmt else f"image/{name}"


def extension(name: str) -> str:
    """The object-key extension of the format called ``name``; the name itself for one this table does not know."""
    fmt = _BY_NAME.get(name)
    return fmt.extension if fmt else name
