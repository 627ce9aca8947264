"""What clients say besides a file's bytes (name, title, tags, the upload id in a path), read as data."""

from __future__ import annotations

import unicodedata
import uuid

from aiohttp import web

from producers import problems

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


def upload_id_in(request: web.Request, *, kind: str = "upload") -> str:
    """The ``{upload_id}`` of the request's path, canonical; a 404 (as for an unknown id) when it is no UUID."""
    raw_id = request.match_info["upload_id"]
    try:
        return str(uuid.UUID(raw_id))
    except ValueError:
        raise problems.not_found(f"no {kind} {raw_id!r}") from None
