"""Receive one uploaded file, hashing it on the way, and store it once its hash has named it.

Memory stays bounded by the part size: chunks are buffered only until a part is full, then
hashed and written to a spool file, off the event loop. A file that ends before the first part
is full never touches the disk. Nothing about the file's name is used: the S3 keys are built
from ids by the caller.

The object only becomes visible when ``commit`` stores it, with one PUT, at the key the caller
chooses once it has seen the content hash (or the caller finds it a duplicate and calls ``abort``
instead). The bytes wait in a local spool file rather than in S3 because the key is not known
while they arrive: streaming them to S3 meant a multipart upload to a staging key, completed,
copied to the final key and deleted, so the store wrote every byte twice and hashed it three
times. The spool file has no name (``tempfile.TemporaryFile``): a gateway that dies leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from photostream.media import SNIFF_BYTES, sniff
from photostream.objectstore import Store


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
    """Receives one file's chunks and spools them until ``commit`` puts them at their key."""

    in_place = False  # see ``producers.gateway.Committable``

    def __init__(self, store: Store, *, part_bytes: int, max_bytes: int, spool_dir: Path | None = None) -> None:
        """Buffer up to ``part_bytes`` in memory, spool the rest in ``spool_dir``; refuse files over ``max_bytes``.

        ``spool_dir`` None is the system's temporary directory (``TMPDIR``).
        """
        self._store = store
        self._part_bytes = part_bytes
        self._max_bytes = max_bytes
        self._spool_dir = spool_dir
        # The chunks since the last spill, joined once when they are spilled (or kept as the whole file):
        # appending to one growing buffer would copy it again at every reallocation.
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._body = b""  # a file that ends before a part is full, kept for commit()
        self._spool: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._content_type = ""  # known once the first bytes are sniffed

    def _take(self) -> bytes:
        """The buffered chunks as one body (the only copy), and an empty buffer."""
        body = b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        return body

    async def _spill(self) -> None:
        # SHA-256 of a part is milliseconds of CPU and hashlib releases the GIL on large buffers, so a
        # worker thread keeps the event loop free and uses another core; the write lands in the page cache.
        body = self._take()
        await asyncio.to_thread(self._hash_and_write, body)

    def _hash_and_write(self, body: bytes) -> None:
        if self._spool is None:
            self._spool = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115  # commit or abort closes it
        self._hash.update(body)
        self._spool.write(body)

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
            await self._spill()

    async def finish(self) -> StagedOriginal:
        """All bytes received: judge short files, spool the rest, return size and hash."""
        if self._size == 0:
            raise RejectedFile("empty")
        if not self._content_type:
            self._content_type = content_type_of(b"".join(self._chunks))
        if self._spool is not None:
            if self._buffered:
                await self._spill()
        else:
            self._body = self._take()  # a file that fits in one part stays in memory
            await asyncio.to_thread(self._hash.update, self._body)
        return StagedOriginal(self._content_type, self._size, self._hash.hexdigest())

    async def commit(self, key: str) -> None:
        """Store the file at ``key`` with one PUT; the spool file is gone afterwards, stored or not.

        The PUT carries the SHA-256 the upload's id was derived from, so S3 refuses bytes that differ
        from those hashed (the spool file, the disk under it), and boto3 computes no checksum of its own.
        """
        digest = self._hash.digest()
        if self._spool is None:
            body, self._body = self._body, b""
            await self._store.put(key, body, content_type=self._content_type, sha256=digest)
            return
        spool, self._spool = self._spool, None
        try:
            spool.seek(0)
            await self._store.put(key, spool, content_type=self._content_type, sha256=digest)
        finally:
            spool.close()

    async def abort(self) -> None:
        """Drop what was received."""
        self._chunks, self._buffered, self._body = [], 0, b""
        if self._spool is not None:
            self._spool.close()
            self._spool = None


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
    """Feed every chunk to ``writer`` and finish; drops what was received on any error."""
    try:
        async for chunk in chunks:
            await writer.write(chunk)
        return await writer.finish()
    except BaseException:
        await writer.abort()
        raise
