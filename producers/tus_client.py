"""The tus side of `photostream upload --resumable`: one file sent in chunks, resumed where the server is.

A file's upload URL is kept in a small JSON file (``ResumeState``, in the user's cache dir) from
its creation until its last byte is accepted, keyed by the gateway, the file's absolute path, its
size and its modification time. Running the same command again after an interruption (a dropped
network, Ctrl-C, a reboot) asks each kept upload's offset with HEAD and sends only the rest; a
file that changed since gets a new upload.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
CHUNK_BYTES = 5 * 1024 * 1024
# Statuses after which the same upload goes on later: a conflict or lock (ask the offset again),
# the quota or a gateway that is busy or down.
RETRIED = frozenset({409, 423, 429, 500, 502, 503, 504})


def default_state_path() -> Path:
    """``$XDG_CACHE_HOME/photostream/resumable-uploads.json`` (``~/.cache`` without it)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "photostream" / "resumable-uploads.json"


class ResumeState:
    """Upload URLs of unfinished files, in one JSON file; written atomically after each change."""

    def __init__(self, path: Path) -> None:
        """Read ``path`` if it exists (an unreadable one counts as empty: uploads start afresh)."""
        self.path = path
        try:
            self._urls: dict[str, str] = json.loads(path.read_text())
        except (OSError, ValueError):
            self._urls = {}

    @staticmethod
    def key(gateway: str, file: Path) -> str:
        """What identifies one file's upload: the gateway, and the file as it is now."""
        stat = file.stat()
        return f"{gateway} {file.resolve()} {stat.st_size} {stat.st_mtime_ns}"

    def get(self, key: str) -> str | None:
        """The kept upload URL, if any."""
        return self._urls.get(key)

    def put(self, key: str, url: str) -> None:
        """Keep ``url`` for ``key``."""
        self._urls[key] = url
        self._save()

    def forget(self, key: str) -> None:
        """Drop ``key``'s URL (its upload finished or is gone)."""
        if self._urls.pop(key, None) is not None:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._urls, indent=1, sort_keys=True))
        temporary.replace(self.path)


class UploadRefused(Exception):
    """The gateway (or S3) answered a status the upload cannot go on from; ``body`` is its problem."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: str | None = None) -> None:
        """Keep the status, the problem body and any ``Retry-After``."""
        super().__init__(f"HTTP {status}: {body.get('detail', '')}")
        self.retriable = status in RETRIED
        self.status = status
        self.body = body
        self.retry_after = retry_after


async def refusal(response: aiohttp.ClientResponse) -> UploadRefused:
    """The refusal a non-success answer stands for, with its problem body (when it has one)."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    body.setdefault("status", response.status)
    return UploadRefused(response.status, body, response.headers.get("Retry-After"))


def _metadata(fields: dict[str, str]) -> str:
    return ",".join(f"{name} {base64.b64encode(value.encode()).decode()}" for name, value in fields.items() if value)


class ResumableSender:
    """Sends files to one gateway's ``/v1/tus/`` through ``session`` (which carries the API key)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        gateway: str,
        state: ResumeState,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        title: str | None = None,
        tags: str | None = None,
    ) -> None:
        """Bind the session, the gateway's base URL and the resume state."""
        self._session = session
        self._gateway = gateway.rstrip("/")
        self._state = state
        self._chunk_bytes = chunk_bytes
        self._title = title
        self._tags = tags

    async def send(self, path: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        """Send ``path`` from where the server is; ``progress(offset)`` after each chunk.

        Returns:
            ``{"upload_id", "existing"}`` once the gateway accepted the file.

        Raises:
            UploadRefused: The gateway refused (a problem), or a status to retry later (429, 5xx, 409).
            aiohttp.ClientError: The connection failed; calling again resumes.
        """
        key = ResumeState.key(self._gateway, path)
        size = path.stat().st_size
        url = self._state.get(key)
        offset = await self._offset(url) if url else None
        if url is None or offset is None:
            url, offset = await self._create(path, size), 0
            self._state.put(key, url)
        progress(offset)
        headers: dict[str, str] = {}
        with path.open("rb") as handle:
            while True:
                handle.seek(offset)
                chunk = await asyncio.to_thread(handle.read, self._chunk_bytes)
                async with self._session.patch(
                    url,
                    data=io.BytesIO(chunk),
                    headers={
                        **TUS_HEADERS,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                ) as response:
                    if response.status != 204:
                        refused = await refusal(response)
                        if 400 <= response.status < 500 and response.status not in RETRIED:
                            self._state.forget(key)  # gone or refused for good: a next run starts afresh
                        raise refused
                    offset = int(response.headers["Upload-Offset"])
                    headers = dict(response.headers)
                progress(offset)
                if offset >= size:
                    break
        self._state.forget(key)
        return {
            "upload_id": headers.get("Photostream-Upload-Id"),
            "existing": headers.get("Photostream-Existing") == "true",
        }

    async def _offset(self, url: str) -> int | None:
        """The server's offset for a kept upload; None when it is gone (expired, terminated)."""
        async with self._session.head(url, headers=TUS_HEADERS) as response:
            if response.status in {404, 410}:
                return None
            if response.status != 200:
                raise await refusal(response)
            return int(response.headers["Upload-Offset"])

    async def _create(self, path: Path, size: int) -> str:
        fields = {"filename": path.name, "title": self._title or "", "tags": self._tags or ""}
        async with self._session.post(
            f"{self._gateway}/v1/tus/",
            headers={**TUS_HEADERS, "Upload-Length": str(size), "Upload-Metadata": _metadata(fields)},
        ) as response:
            if response.status != 201:
                raise await refusal(response)
            return urljoin(f"{self._gateway}/v1/tus/", response.headers["Location"])
