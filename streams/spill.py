"""An original on its way in: hashed as it arrives, in memory up to a threshold, in a temp file beyond.

A worker has several uploads in flight and originals reach tens of megabytes; most of them sit
waiting for an imaging thread. Held whole in memory, eight 45 MB originals would be most of a
worker's footprint. So the download streams into a ``SpooledOriginal``: each chunk is hashed as
it comes, on the store's thread (never the event loop), and kept in memory until ``threshold``
bytes, after which everything goes to a temp file that the image library opens by its path and
reads as it decodes. At most ``threshold`` bytes of one original are ever held in memory.

``discard`` removes the temp file and makes later writes fail, so a download still running on a
thread for an upload that was cancelled stops at its next chunk. The handler discards however
the upload ends: processed, failed or cancelled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

SPILL_PREFIX = "photostream-original-"


class Discarded(Exception):
    """Written to after ``discard``: the upload it was for is over."""


class SpooledOriginal:
    """Bytes written in chunks, hashed on the way, in memory up to ``threshold`` and on disk beyond."""

    def __init__(self, threshold: int, directory: Path | None = None) -> None:
        """Create an empty original.

        Args:
            threshold: Most bytes kept in memory; a larger original goes to a temp file.
            directory: Where temp files go; the system's temp dir when None.
        """
        self._threshold = threshold
        self._directory = directory
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._bytes: bytes | None = None
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0
        self._discarded = False
        # Writes run on a store thread; discard may come from the event loop at any moment.
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def path(self) -> Path | None:
        """The temp file, once the original outgrew memory (and until discarded)."""
        return self._path

    def sha256(self) -> str:
        """The hex SHA-256 of everything written so far."""
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        """Hash and keep the next chunk (blocking: call it off the event loop).

        Raises:
            Discarded: The original was discarded.
            OSError: The temp file cannot be written (disk full, ...).
        """
        with self._lock:
            if self._discarded:
                raise Discarded("the original was discarded")
            if self._bytes is not None or (self._path is not None and self._file is None):
                raise RuntimeError("write after source(): the original is complete")
            self._hash.update(chunk)
            self._size += len(chunk)
            if self._file is None and len(self._buffer) + len(chunk) <= self._threshold:
                self._buffer += chunk
                return
            if self._file is None:
                self._spill()
            assert self._file is not None  # noqa: S101 - _spill opened it
            self._file.write(chunk)

    def source(self) -> bytes | Path:
        """The whole original, for the image library: its bytes, or the temp file's path.

        Call it once the download is complete: no write may follow. The temp file is flushed and
        closed for writing, and stays until ``discard``.
        """
        with self._lock:
            if self._discarded:
                raise Discarded("the original was discarded")
            if self._file is None:
                if self._bytes is None:  # one copy, then the buffer goes
                    self._bytes, self._buffer = bytes(self._buffer), bytearray()
                return self._bytes
            self._file.close()
            self._file = None
            assert self._path is not None  # noqa: S101 - set with the file
            return self._path

    def discard(self) -> None:
        """Drop the bytes and remove the temp file; idempotent, quick enough for the event loop."""
        with self._lock:
            self._discarded = True
            self._buffer, self._bytes = bytearray(), None
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._path.unlink()
                self._path = None

    def _spill(self) -> None:
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=SPILL_PREFIX, dir=self._directory)
        self._path = Path(name)
        self._file = os.fdopen(handle, "wb")
        self._file.write(self._buffer)
        self._buffer = bytearray()

    def __enter__(self) -> SpooledOriginal:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _error: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.discard()
