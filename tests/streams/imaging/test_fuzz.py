"""Fuzzing the decoder entry points: any bytes give a result or an ImageError, never another exception.

Bounded for CI: a few hundred examples per property, each decode bounded by the library's own
time limit. Seeds are valid files of every accepted format, damaged by hypothesis (bytes
flipped, cut, inserted), plus raw arbitrary bytes.
"""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from streams.imaging import (
    DEFAULT_VARIANTS,
    ImageError,
    Limits,
    fingerprint,
    open_original,
    read_metadata,
    render,
)
from tests.streams.imaging.photos import make_photo

LIMITS = Limits(max_pixels=4_000_000, max_decode_seconds=5)
# As in the worker (streams/worker.py): damaged files make libvips warn per broken marker, and a
# warning storm through pytest's log capture is slower than the decode itself.
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def quiet_libvips():
    logger = logging.getLogger("pyvips")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _seed(fmt: str) -> bytes:
    if fmt in {"JPEG", "PNG", "WEBP", "TIFF"}:
        return make_photo(width=96, height=64, seed=5, fmt=fmt)
    out = io.BytesIO()
    Image.new("P", (48, 32), 3).save(out, "GIF")
    return out.getvalue()


SEEDS = {fmt: _seed(fmt) for fmt in ("JPEG", "PNG", "WEBP", "TIFF", "GIF")}


def everything(data: bytes) -> None:
    """Every entry point a worker calls, as it calls them; only ImageError may come out."""
    failure: ImageError | None = None
    try:
        original = open_original(data, LIMITS)
        read_metadata(original, keep_gps=True)
        working = original.reduced(1920, 1920)
        fingerprint(working)
        for spec in DEFAULT_VARIANTS:
            render(working, spec)
    except ImageError as error:
        failure = error
    if failure is not None:
        assert failure.reason.value in {"corrupt", "unsupported", "too_many_pixels"}
        assert failure.detail


@st.composite
def damaged(draw, fmt: str) -> bytes:
    data = bytearray(SEEDS[fmt])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 512))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_damaged_files_give_a_result_or_an_image_error(fmt):
    @FUZZ
    @given(damaged(fmt))
    def check(data: bytes) -> None:
        everything(data)

    check()


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_result_or_an_image_error(data):
    everything(data)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.binary(min_size=1, max_size=2048))
def test_a_valid_header_followed_by_anything(fmt, tail):
    everything(SEEDS[fmt][:32] + tail)
