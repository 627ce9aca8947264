"""Real camera and phone files from the shared corpus (skipped when it is absent, except under CI).

Parameters are the files found at collection; without a corpus each test gets one skipped case.
Each file is processed once per session (HEIC decoding takes seconds) and the tests read the result.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from schemas.events import FailureReason, ImageMetadata
from streams.imaging import (
    DEFAULT_VARIANTS,
    Fingerprints,
    ImageError,
    Limits,
    Original,
    RenderedVariant,
    fingerprint,
    hamming_distance,
    open_original,
    read_exif,
    read_metadata,
    render,
)
from tests.corpus import CORPUS, UNDER_CI, corpus_files, missing, require

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
IMAGE_ERROR_REASONS = {FailureReason.CORRUPT, FailureReason.UNSUPPORTED, FailureReason.TOO_MANY_PIXELS}
# Generous: the slowest file here takes ~2 s (a 12-megapixel HEIC); a hang is what this catches.
SECONDS_PER_FILE = 60


def _files(pattern: str) -> list:
    """Parameters for the corpus images matching ``pattern``; without any, one skipped parameter (CI: an error)."""
    files = [path for path in corpus_files(pattern) if path.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        reason = f"no {pattern} in the shared corpus ({CORPUS})"
        if UNDER_CI:
            missing(reason)
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(path, id=path.relative_to(CORPUS).as_posix()) for path in files]


@dataclass(frozen=True)
class Processed:
    """Everything the processing agent computes from one original."""

    original: Original
    metadata: ImageMetadata
    metadata_with_gps: ImageMetadata
    fingerprints: Fingerprints
    variants: dict[tuple[str, str], RenderedVariant]
    seconds: float


@cache
def _process(path: Path) -> Processed | ImageError:
    """Run the whole library on a file; an ImageError is returned, any other exception propagates."""
    started = time.monotonic()
    try:
        original = open_original(path.read_bytes())
        metadata = read_metadata(original)
        metadata_with_gps = read_metadata(original, keep_gps=True)
        fingerprints = fingerprint(original)
        variants = {(out.variant, out.format): out for spec in DEFAULT_VARIANTS for out in render(original, spec)}
    except ImageError as error:
        return error
    return Processed(original, metadata, metadata_with_gps, fingerprints, variants, time.monotonic() - started)


def _processed(path: Path) -> Processed:
    result = _process(path)
    if isinstance(result, ImageError):
        pytest.fail(f"{path.name}: {result!r}")
    return result


@pytest.mark.parametrize("path", _files("**/*"))
def test_every_file_gives_a_full_result_or_an_image_error(path):
    result = _process(path)
    if isinstance(result, ImageError):
        assert result.reason in IMAGE_ERROR_REASONS
        return
    assert sorted(result.variants) == [
        ("square", "webp"),
        ("thumb", "jpeg"),
        ("thumb", "webp"),
        ("web", "jpeg"),
        ("web", "webp"),
    ]
    assert (result.metadata.width, result.metadata.height) == result.original.display_size
    assert result.seconds < SECONDS_PER_FILE


@pytest.mark.parametrize("path", _files("jpg/invalid/*"))
def test_broken_files_raise_nothing_but_image_error_from_any_entry_point(path):
    data = path.read_bytes()
    try:
        original = open_original(data)
    except ImageError:
        return
    steps = {
        "read_exif": lambda: read_exif(original),
        "read_metadata": lambda: read_metadata(original),
        "read_metadata(keep_gps)": lambda: read_metadata(original, keep_gps=True),
        "fingerprint": lambda: fingerprint(original),
        **{f"render({spec.name})": (lambda spec=spec: render(original, spec)) for spec in DEFAULT_VARIANTS},
    }
    escaped = {}
    for name, step in steps.items():
        try:
            step()
        except ImageError:
            pass
        except Exception as error:  # noqa: BLE001 - collecting every escape is the point of this test
            escaped[name] = repr(error)
    assert escaped == {}


@pytest.mark.parametrize("path", _files("jpg/orientation/landscape_*.jpg"))
def test_orientation_files_render_upright_landscape(path):
    web = _processed(path).variants[("web", "jpeg")]
    assert web.width > web.height
    assert abs(web.width - 600) <= 2
    assert abs(web.height - 450) <= 2


@pytest.mark.parametrize("path", _files("jpg/orientation/landscape_*.jpg"))
def test_orientation_files_render_the_same_picture_as_orientation_1(path):
    reference = _processed(require("jpg/orientation/landscape_1.jpg")[0]).fingerprints.phash
    web = _processed(path).variants[("web", "jpeg")]
    assert hamming_distance(reference, fingerprint(open_original(web.data)).phash) <= 4


@pytest.mark.parametrize("path", _files("jpg/gps/*"))
def test_gps_is_read_only_when_kept(path):
    result = _processed(path)
    kept, dropped = result.metadata_with_gps, result.metadata
    assert -90 <= kept.gps_latitude <= 90
    assert -180 <= kept.gps_longitude <= 180
    assert (dropped.gps_latitude, dropped.gps_longitude, dropped.gps_altitude) == (None, None, None)


def test_gps_position_of_a_known_photo():
    metadata = _processed(require("jpg/gps/DSCN0010.jpg")[0]).metadata_with_gps
    assert (metadata.gps_latitude, metadata.gps_longitude) == pytest.approx((43.467, 11.885), abs=1e-3)


@pytest.mark.parametrize("path", _files("jpg/*.jpg"))
def test_camera_files_name_their_maker_and_model(path):
    metadata = _processed(path).metadata
    assert metadata.camera_make
    assert metadata.camera_model


def test_canon_40d_exposure():
    metadata = _processed(require("jpg/Canon_40D.jpg")[0]).metadata
    exposure = (metadata.camera_make, metadata.camera_model, metadata.iso, metadata.f_number, metadata.exposure_time)
    assert exposure == ("Canon", "Canon EOS 40D", 100, 7.1, 0.00625)


def test_iphone_heic_metadata():
    metadata = _processed(require("heic/IMG_5195.HEIC")[0]).metadata
    assert (metadata.format, metadata.camera_make, metadata.camera_model) == ("heif", "Apple", "iPhone 11 Pro Max")
    assert re.fullmatch(r"[+-]\d\d:\d\d", metadata.captured_at_utc_offset or "")


def test_iphone_heic_is_displayed_portrait():
    metadata = _processed(require("heic/IMG_5195.HEIC")[0]).metadata
    assert (metadata.width, metadata.height) == (2566, 3313)


def test_iphone_heic_variants_are_portrait():
    web = _processed(require("heic/IMG_5195.HEIC")[0]).variants[("web", "webp")]
    assert (web.width, web.height) == (1487, 1920)


def test_heic_over_the_pixel_limit_is_refused_before_decoding():
    data = require("heic/IMG_5195.HEIC")[0].read_bytes()
    started = time.monotonic()
    with pytest.raises(ImageError) as caught:
        open_original(data, Limits(max_pixels=1_000_000))
    assert caught.value.reason is FailureReason.TOO_MANY_PIXELS
    assert time.monotonic() - started < 1.0  # decoding this file takes ~2 s
