"""The HEIF decoder process: reads requests on stdin, decodes with pillow-heif, answers on stdout.

Run as a script by ``streams.imaging.heif`` (``python -P heif_decoder.py``), never imported: it
loads pillow-heif and the standard library only, so it starts in a fraction of a second. One
request at a time, until stdin closes (the worker stopped or died).

Protocol, all lengths big-endian::

    request   kind (1 byte: b"p" a path, b"b" the file's bytes), length (8), payload
    answer    b"O", length (4), JSON {"shape": [height, width, bands]}, length (8), 8-bit pixels
              b"E", length (4), JSON {"error": "..."}      the file could not be decoded

It writes b"R" once ready. The parent kills it when a decode runs out of time.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import signal
import struct
from typing import BinaryIO

import pillow_heif

_BANDS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def main() -> None:
    """Serve decode requests until stdin closes."""
    # Ctrl-C or a SIGTERM to the whole process group must not fail a decode in flight as if the
    # file had crashed it: this process stops when the worker closes its stdin, or kills it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests = io.FileIO(0, "rb", closefd=False)
    # Answers get their own copy of stdout; anything a library prints goes to stderr instead.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    answers.write(b"R")
    answers.flush()
    while True:
        header = _read(requests, 9)
        if header is None:
            return
        kind, length = struct.unpack(">cQ", header)
        payload = _read(requests, length)
        if payload is None:
            return
        _answer(answers, payload if kind == b"b" else payload.decode())
        del payload
        _give_back_memory()


def _answer(answers: BinaryIO, source: bytes | str) -> None:
    try:
        heif = pillow_heif.open_heif(source, convert_hdr_to_8bit=True)
        width, height = heif.size
        bands = _BANDS[heif.mode]
        data, stride = heif.data, heif.stride  # decodes
    except KeyError as error:
        _send(answers, b"E", {"error": f"unexpected pixel mode {error}"})
        return
    except Exception as error:  # noqa: BLE001 - any libheif error is the file's fault; the parent says so
        _send(answers, b"E", {"error": repr(error)})
        return
    row = width * bands
    _send(answers, b"O", {"shape": [height, width, bands]})
    answers.write(struct.pack(">Q", row * height))
    pixels = memoryview(data)
    if stride == row:
        answers.write(pixels[: row * height])
    else:  # rows padded for alignment: send the pixels only
        for y in range(height):
            answers.write(pixels[y * stride : y * stride + row])
    answers.flush()


def _give_back_memory() -> None:
    # glibc keeps freed heap for reuse: an idle decoder would hold on to its largest image.
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _send(answers: BinaryIO, status: bytes, message: dict[str, object]) -> None:
    body = json.dumps(message).encode()
    answers.write(status + struct.pack(">I", len(body)) + body)
    answers.flush()


def _read(stream: io.RawIOBase, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = stream.readinto(view[got:])
        if not count:
            return None
        got += count
    return bytes(buffer)


if __name__ == "__main__":
    main()
