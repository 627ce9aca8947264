"""HEIC/HEIF: read the header in process, decode in a child process that is killed at the time limit.

libvips stops its own work when the time is up (``original.compute``), but HEVC is decoded by
libheif through pillow-heif, and a pillow-heif decode cannot be interrupted: it returns when the
whole image is decoded. A HEIF of a few kilobytes can declare a grid whose tiles all point at one
coded tile, so it decodes hundreds of megapixels into a small output, for minutes. Two bounds:

1. Before any decode, the header (parsed by libheif without decoding, within libheif's own
   security limits, among them at most 1000 item references and so 1000 grid tiles) gives the
   output size and, for a grid, its tiles: the caller checks both the output and the pixels the
   decoder will produce (tiles x tile size) against its pixel limit.
2. The decode runs in a child process (``heif_decoder.py``), killed when the time limit passes.
   A process is the only thing here the OS can stop mid-call: a thread cannot be killed, and
   pillow-heif offers no way to cancel a decode. The child also keeps a crash of libheif on a
   malicious file out of the worker.

The children are started with ``subprocess`` (fork and exec of a fresh interpreter, safe from
the worker's many threads, unlike a bare fork) and reused: one per decode running at once, so
at most one per imaging thread, each about 25 MB when idle and a fraction of a second to start
(not counted in the time limit). A child that ran out of time is killed and replaced on the
next decode. multiprocessing's fork server would do the same, but it re-runs the parent's
``__main__`` script in every child.
"""

from __future__ import annotations

import atexit
import io
import json
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, cast

import numpy as np
import pillow_heif

from schemas.events import FailureReason
from streams.imaging.errors import ImageError

_DECODER_SCRIPT = Path(__file__).with_name("heif_decoder.py")
# Starting an interpreter that imports pillow-heif takes well under a second; a busy machine gets slack.
_START_SECONDS = 30.0
# Deaths that mean libheif itself crashed on the file, rather than someone killing the decoder.
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}


@dataclass(frozen=True, slots=True)
class HeifHeader:
    """What a HEIF's container says about its primary image, before any pixel is decoded.

    Attributes:
        width: Output width in pixels, upright (libheif applies the container's rotation).
        height: Output height in pixels.
        tiles: Grid tiles (columns x rows); 1 for an image that is not a grid.
        decoded_pixels: Pixels the decoder produces: every tile in full, even where the grid crops it.
        icc_profile: The embedded ICC profile, if any.
        exif: The raw EXIF block, if any.
    """

    width: int
    height: int
    tiles: int
    decoded_pixels: int
    icc_profile: bytes | None
    exif: bytes | None


def is_heif(head: bytes) -> bool:
    """Tell from a file's first bytes (16 are enough) whether it is a HEIF that pillow-heif reads."""
    return bool(pillow_heif.is_supported(head))


def read_header(source: bytes | Path) -> HeifHeader:
    """Parse the container and describe its primary image without decoding it.

    Raises:
        ImageError: ``corrupt`` when the container cannot be read (libheif's security limits
            included: a grid of more than 1000 tiles is refused here).
    """
    # pillow-heif raises whatever libheif's parser tripped on (ValueError, IndexError, ...) for a
    # damaged container: any error reading it is the file's fault. It reads a file on disk whole
    # for this, briefly (HEICs are phone photos of a few MB; one at a time per imaging thread).
    try:
        heif = pillow_heif.open_heif(_argument(source), convert_hdr_to_8bit=True)
        width, height = heif.size
        info = heif.info
    except Exception as error:
        raise ImageError(FailureReason.CORRUPT, f"HEIF container could not be read: {error!r}") from error
    tiles, decoded = 1, width * height
    tiling = info.get("tiling")
    if tiling:
        tiles = int(tiling["num_columns"]) * int(tiling["num_rows"])
        decoded = max(decoded, tiles * int(tiling["tile_width"]) * int(tiling["tile_height"]))
    icc, exif = info.get("icc_profile"), info.get("exif")
    return HeifHeader(
        width=width,
        height=height,
        tiles=tiles,
        decoded_pixels=decoded,
        icc_profile=bytes(icc) if icc else None,
        exif=bytes(exif) if exif else None,
    )


def decode(source: bytes | Path, seconds: float) -> np.ndarray:
    """Decode the primary image to 8-bit pixels (height x width x bands) in a child process.

    Args:
        source: The file, as bytes or a path the child can open.
        seconds: Wall-clock budget for the decode; the child is killed when it runs out.

    Raises:
        ImageError: ``corrupt`` when the image cannot be decoded, libheif crashed, or the time ran out.
    """
    return _DECODERS.decode(source, seconds)


class _Decoder:
    """One child process that decodes one HEIF at a time."""

    def __init__(self) -> None:
        # -P: the script's folder (this package) stays off the child's sys.path.
        self.process = subprocess.Popen(  # noqa: S603 - our own script, run by our own interpreter
            [sys.executable, "-P", str(_DECODER_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        try:
            ready = self._read(1, time.monotonic() + _START_SECONDS)
        except (_Gone, _Crashed, _TimedOut) as error:
            self.kill()
            raise RuntimeError(f"the HEIF decoder process did not start: {error!r}") from None
        if ready != b"R":
            self.kill()
            raise RuntimeError(f"the HEIF decoder process started wrongly: {ready!r}")

    def decode(self, source: bytes | Path, seconds: float) -> np.ndarray | str:
        """The pixels, or libheif's complaint about the file.

        Raises:
            _TimedOut: The decode ran out of time.
            _Crashed: libheif crashed on the file.
            _Gone: The process died or cannot be written to: not the file's fault.
        """
        payload, kind = (source, b"b") if isinstance(source, bytes) else (str(source).encode(), b"p")
        self._write(struct.pack(">cQ", kind, len(payload)))
        self._write(payload)
        deadline = time.monotonic() + seconds
        status = self._read(1, deadline)
        (length,) = struct.unpack(">I", self._read(4, deadline))
        message = json.loads(self._read(length, deadline))
        if status != b"O":
            return str(message.get("error", "no detail"))
        (size,) = struct.unpack(">Q", self._read(8, deadline))
        return np.frombuffer(self._read(size, deadline), dtype=np.uint8).reshape(message["shape"])

    def kill(self) -> None:
        """Stop the child now, whatever it is doing."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def _write(self, data: bytes) -> None:
        pipe = self.process.stdin
        assert pipe is not None  # noqa: S101 - set by Popen(stdin=PIPE)
        view, sent = memoryview(data), 0
        try:
            while sent < len(view):
                sent += pipe.write(view[sent:]) or 0
        except OSError as error:
            raise _Gone(f"it does not read its requests: {error!r}") from error

    def _read(self, size: int, deadline: float) -> bytearray:
        pipe = cast(io.RawIOBase | None, self.process.stdout)  # unbuffered: Popen(bufsize=0)
        assert pipe is not None  # noqa: S101 - set by Popen(stdout=PIPE)
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        poller = select.poll()
        poller.register(pipe, select.POLLIN)
        while got < size:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise _TimedOut
            count = pipe.readinto(view[got:])
            if not count:
                self._died()
            got += count
        return buffer

    def _died(self) -> NoReturn:
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            raise _Gone("it closed its output") from None
        if -code in _CRASH_SIGNALS:
            raise _Crashed(signal.Signals(-code).name)
        raise _Gone(f"it exited with {code}")


class _Gone(Exception):
    """The decoder process cannot answer (it died or cannot be written to); not the file's fault."""


class _Crashed(Exception):
    """libheif crashed the decoder process on this file."""


class _TimedOut(Exception):
    """The decode ran out of time."""


class _Decoders:
    """Idle decoder processes, shared by the threads that decode."""

    def __init__(self) -> None:
        self._idle: list[_Decoder] = []
        self._lock = threading.Lock()

    def decode(self, source: bytes | Path, seconds: float) -> np.ndarray:
        """Decode on an idle decoder, or a new one; see ``decode``."""
        try:
            result = self._decode(source, seconds)
        except _TimedOut as error:
            raise ImageError(FailureReason.CORRUPT, f"decoding took longer than {seconds:g} s") from error
        except _Crashed as error:
            raise ImageError(FailureReason.CORRUPT, f"the HEIF decoder crashed on this file ({error})") from error
        except _Gone as error:
            raise RuntimeError(f"the HEIF decoder process failed: {error}") from error
        if isinstance(result, str):
            raise ImageError(FailureReason.CORRUPT, f"HEIF image could not be decoded: {result}")
        return result

    def _decode(self, source: bytes | Path, seconds: float) -> np.ndarray | str:
        decoder = self._take()
        if decoder is not None:
            try:
                return self._run(decoder, source, seconds)
            except _Gone:
                pass  # it died while idle (killed, out of memory): not the file's fault, once more
        return self._run(_Decoder(), source, seconds)

    def _run(self, decoder: _Decoder, source: bytes | Path, seconds: float) -> np.ndarray | str:
        try:
            result = decoder.decode(source, seconds)
        except BaseException:
            decoder.kill()  # whatever it was doing: out of time, dead, or interrupted mid-answer
            raise
        with self._lock:
            self._idle.append(decoder)
        return result

    def _take(self) -> _Decoder | None:
        with self._lock:
            while self._idle:
                decoder = self._idle.pop()
                if decoder.process.poll() is None:
                    return decoder
                decoder.kill()  # died while idle: reap it
        return None

    def close(self) -> None:
        """Stop every idle decoder (at exit; busy ones stop when their pipe closes)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for decoder in idle:
            decoder.kill()


def _argument(source: bytes | Path) -> bytes | str:
    return str(source) if isinstance(source, Path) else source


_DECODERS = _Decoders()
atexit.register(_DECODERS.close)
