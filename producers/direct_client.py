"""The direct side of `photostream upload --direct`: declare, PUT to S3, complete."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from producers.tus_client import UploadRefused, refusal

_READ_BYTES = 256 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class DirectSender:
    """Sends files straight to S3 through the URLs one gateway signs; ``session`` carries the API key."""

    def __init__(
        self, session: aiohttp.ClientSession, gateway: str, *, title: str | None = None, tags: str | None = None
    ) -> None:
        """Bind the session and the gateway's base URL."""
        self._session = session
        self._gateway = gateway.rstrip("/")
        self._title = title
        self._tags = tags

    async def send(self, path: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        """Declare ``path``, PUT it (or its parts) to S3, complete it; ``progress(bytes sent)`` as it goes.

        Returns:
            ``{"upload_id", "existing"}``.

        Raises:
            UploadRefused: The gateway or S3 refused (a problem), or a status to retry later.
            aiohttp.ClientError: The connection failed; calling again starts over.
        """
        size = path.stat().st_size
        declaration: dict[str, Any] = {
            "filename": path.name,
            "size": size,
            "sha256": await asyncio.to_thread(_sha256, path),
        }
        if self._title:
            declaration["title"] = self._title
        if self._tags:
            declaration["tags"] = self._tags
        async with self._session.post(f"{self._gateway}/v1/uploads/direct", json=declaration) as response:
            if response.status not in {200, 201}:
                raise await refusal(response)
            answer = await response.json()
        if answer.get("existing"):
            progress(size)
            return {"upload_id": answer["upload_id"], "existing": True}
        # A presigned URL is all the authorisation S3 needs: the API key must not go there.
        async with aiohttp.ClientSession(timeout=self._session.timeout) as s3:
            if "parts" in answer:
                for part in answer["parts"]:
                    await _put(s3, part["url"], path, part["offset"], part["size"], {}, progress)
            else:
                await _put(s3, answer["url"], path, 0, size, answer["headers"], progress)
        async with self._session.post(f"{self._gateway}{answer['complete_url']}") as response:
            if response.status != 202:
                raise await refusal(response)
            done = await response.json()
        return {"upload_id": done["upload_id"], "existing": bool(done.get("existing"))}


async def _put(
    s3: aiohttp.ClientSession,
    url: str,
    path: Path,
    offset: int,
    length: int,
    headers: dict[str, str],
    progress: Callable[[int], None],
) -> None:
    """PUT ``length`` bytes of ``path`` from ``offset``; ``progress`` gets the file offset reached."""

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        with path.open("rb") as handle:
            handle.seek(offset)
            while sent < length:
                chunk = await asyncio.to_thread(handle.read, min(_READ_BYTES, length - sent))
                if not chunk:
                    return
                sent += len(chunk)
                progress(offset + sent)
                yield chunk

    async with s3.put(url, data=body(), headers={**headers, "Content-Length": str(length)}) as response:
        if response.status != 200:
            detail = (await response.text())[:300]
            raise UploadRefused(response.status, {"status": response.status, "code": "s3-refused", "detail": detail})
