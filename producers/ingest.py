"""Stream one uploaded file into S3 while it arrives, hashing it on the way.

Memory stays bounded by the part size: bytes are buffered only until a part is
full, then sent as one part of an S3 multipart upload. A file that ends before
the first part is full is stored with one PUT. Nothing about the file's name is
used: the S3 keys are built from ids by the caller.

The object only becomes visible when ``commit`` stores it, at a key the caller
chooses once it has seen the content hash (or the caller finds it a duplicate and
calls ``abort`` instead). A multipart upload has to name its key before the first
part, so it is staged under a key of its own, then completed, copied inside the
store to the final key and the staged copy deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from photostream.media import SNIFF_BYTES, sniff
from photostream.objectstore import MultipartUpload, Store, StoreError


class RejectedFile(Exception):
    """The file cannot be accepted; ``reason`` says why (too_large, unsupported, empty)."""

    def __init__(self, reason: str) -> None:
        """Record the reason code."""
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StagedOriginal:
    """A fully received file, staged but not yet committed."""

    content_type: str
    size: int
    sha256: str


class OriginalWriter:
    """Receives one file's chunks and stages them in S3 under ``staging_key``."""

    in_place = False  # see ``producers.gateway.Committable``

    def __init__(self, store: Store, staging_key: str, *, part_bytes: int, max_bytes: int) -> None:
        """Stage multipart uploads at ``staging_key``; parts of ``part_bytes``; refuse files over ``max_bytes``."""
        self._store = store
        self._key = staging_key
        self._part_bytes = part_bytes
        self._max_bytes = max_bytes
        # The chunks since the last part, joined once when a part (or the one PUT) is sent: appending to
        # one growing buffer would copy it again at every reallocation (a third of the event loop's time).
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._body = b""  # a file that ends before a part is full, kept for commit()
        self._hash = hashlib.sha256()
        self._size = 0
        self._content_type = ""  # known once the first bytes are sniffed
        self._multipart: MultipartUpload | None = None

    async def _flush_part(self) -> None:
        if self._multipart is None:
            self._multipart = await self._store.start_multipart(self._key, content_type=self._content_type)
        body = self._take()
        _, self._multipart = await asyncio.gather(
            self._hash_off_loop(body), self._store.upload_part(self._multipart, body)
        )

    def _take(self) -> bytes:
        """The buffered chunks as one body (the only copy), and an empty buffer."""
        body = b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        return body

    async def _hash_off_loop(self, data: bytes) -> None:
        # SHA-256 of a whole part is milliseconds of CPU; hashlib releases the GIL on
        # large buffers, so a worker thread keeps the event loop free and uses another core.
        if data:
            await asyncio.to_thread(self._hash.update, data)

    async def write(self, chunk: bytes) -> None:
        """Take the next chunk; raises RejectedFile as soon as the bytes show it is unacceptable."""
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise RejectedFile("too_large")
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if not self._content_type:
            if self._buffered < SNIFF_BYTES:
                return
            self._content_type = content_type_of(b"".join(self._chunks)[:SNIFF_BYTES])
        if self._buffered >= self._part_bytes:
            await self._flush_part()

    async def finish(self) -> StagedOriginal:
        """All bytes received: judge short files, upload the last part, return size and hash."""
        if self._size == 0:
            raise RejectedFile("empty")
        if not self._content_type:
            self._content_type = content_type_of(b"".join(self._chunks))
        if self._multipart is not None and self._buffered:
            await self._flush_part()
        elif self._multipart is None:
            self._body = self._take()  # a one-PUT file: kept for commit()
            await self._hash_off_loop(self._body)
        return StagedOriginal(self._content_type, self._size, self._hash.hexdigest())

    async def commit(self, key: str) -> None:
        """Make the object durable and visible at ``key`` (a one-PUT file goes straight there).

        A staged copy that cannot be deleted is left to the staging sweep (``producers.staging_sweep``)
        and the bucket's lifecycle rule (``photostream.objectstore.LIFECYCLE_RULES``).
        """
        if self._multipart is None:
            body, self._body = self._body, b""
            await self._store.put(key, body, content_type=self._content_type)
            return
        upload, self._multipart = self._multipart, None
        try:
            await self._store.complete_multipart(upload)
        except BaseException:
            with contextlib.suppress(StoreError):
                await self._store.abort_multipart(upload)
            raise
        try:
            await self._store.copy(upload.key, key)
        finally:
            with contextlib.suppress(StoreError):
                await self._store.delete(upload.key)

    async def abort(self) -> None:
        """Drop whatever was staged (best effort: an abandoned upload must not fail the request)."""
        self._chunks, self._buffered, self._body = [], 0, b""
        if self._multipart is not None:
            with contextlib.suppress(StoreError):
                await self._store.abort_multipart(self._multipart)
            self._multipart = None


@dataclass(frozen=True)
class StoredFile:
    """A whole file already in the store (a finished tus or direct upload), copied to the original's key by ``commit``.

    It stays where it is either way until the caller has the upload accepted: a try that fails
    after the copy (Kafka down) discards the copy, and the next try reads the file again.
    """

    store: Store
    key: str
    in_place: bool = False  # see ``producers.gateway.Committable``

    async def commit(self, key: str) -> None:
        """Copy the file to ``key`` inside the store (nothing to do when it is there already)."""
        if self.key != key:
            await self.store.copy(self.key, key)

    async def abort(self) -> None:
        """Nothing to drop yet (see the class docstring)."""


def content_type_of(head: bytes) -> str:
    """The media type the first bytes show; RejectedFile("unsupported") for anything but an accepted image."""
    fmt = sniff(head)
    if fmt is None:
        raise RejectedFile("unsupported")
    return fmt.content_type


async def stage(writer: OriginalWriter, chunks: AsyncIterator[bytes]) -> StagedOriginal:
    """Feed every chunk to ``writer`` and finish; aborts the staged parts on any error."""
    try:
        async for chunk in chunks:
            await writer.write(chunk)
        return await writer.finish()
    except BaseException:
        await writer.abort()
        raise
