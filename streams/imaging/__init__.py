"""The image library: bytes in, metadata, fingerprints and web variants out.

Pure code with no Kafka, S3 or event loop in it, so it is tested and benchmarked on its own;
the Faust agents only wire it to topics. Every entry point raises ``ImageError`` (with a
reason code) on bad input and nothing else.
"""

from streams.imaging.errors import ImageError
from streams.imaging.hashes import Fingerprints, fingerprint, hamming_distance
from streams.imaging.icc import icc_description
from streams.imaging.metadata import read_exif, read_metadata
from streams.imaging.original import Limits, Original, open_original
from streams.imaging.variants import (
    DEFAULT_VARIANTS,
    RenderedVariant,
    VariantSpec,
    render,
    variant_count,
)

__all__ = [
    "DEFAULT_VARIANTS",
    "Fingerprints",
    "ImageError",
    "Limits",
    "Original",
    "RenderedVariant",
    "VariantSpec",
    "fingerprint",
    "hamming_distance",
    "icc_description",
    "open_original",
    "read_exif",
    "read_metadata",
    "render",
    "variant_count",
]
