"""Where the pipeline's derived objects live in the bucket, for every process that writes or removes them.

Variants go to ``derivatives/{photographer}/{yyyy}/{mm}/{dd}/{upload_id}/{variant}.{ext}``: by
photographer, the upload's date (UTC) and the image's id, so one image's variants share a prefix
(the S3 sink lists it to complete an image, a delete removes it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from photostream import media


def variants_prefix(photographer_id: str, upload_id: uuid.UUID | str, received_at: datetime) -> str:
    """The prefix (ending in ``/``) every variant of one image is stored under."""
    day = received_at.astimezone(UTC)
    return f"derivatives/{photographer_id}/{day:%Y/%m/%d}/{upload_id}/"


def variant_key(photographer_id: str, upload_id: uuid.UUID, received_at: datetime, variant: str, fmt: str) -> str:
    """The object key of one variant of an image."""
    return f"{variants_prefix(photographer_id, upload_id, received_at)}{variant}.{media.extension(fmt)}"
