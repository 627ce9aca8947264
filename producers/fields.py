"""What clients say about a file besides its bytes (name, title, tags), read as data."""

from __future__ import annotations

import unicodedata

MAX_FILENAME_CHARS = 255
MAX_TAGS = 50


def clean_filename(raw: str | None) -> str:
    """The client's filename as data: no path, no control characters, bounded length."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return name.strip()[:MAX_FILENAME_CHARS] or "unnamed"


def parse_title(raw: str) -> str | None:
    """The title, trimmed; None when blank."""
    return raw.strip() or None


def parse_tags(raw: str) -> list[str]:
    """Comma-separated tags, trimmed, empty ones dropped, at most ``MAX_TAGS``."""
    return [tag.strip() for tag in raw.split(",") if tag.strip()][:MAX_TAGS]
