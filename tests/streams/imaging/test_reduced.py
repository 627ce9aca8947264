"""Decoding once into a reduced working copy, and cutting the smaller images from it."""

from __future__ import annotations

import pytest

from schemas.events import FailureReason
from streams.imaging import DEFAULT_VARIANTS, ImageError, fingerprint, hamming_distance, open_original, render
from tests.streams.imaging.photos import landmark_picture, make_oriented_photo, make_photo, truncated_jpeg


def test_the_working_copy_is_upright_and_fits_the_box():
    original = open_original(make_oriented_photo(6, landmark_picture(1200, 900)))
    working = original.reduced(600, 600)
    assert (original.width, original.height) == (900, 1200)  # stored turned a quarter
    assert (working.width, working.height) == (600, 450)  # upright, like the picture shown
    assert working.orientation == 1
    assert original.display_size == (1200, 900)  # the original keeps its full size


def test_variants_from_the_working_copy_match_those_from_the_original():
    original = open_original(make_photo(width=2400, height=1600, seed=3))
    working = original.reduced(1920, 1920)
    for spec in DEFAULT_VARIANTS:
        direct = render(original, spec)
        derived = render(working, spec)
        assert [(v.variant, v.format, v.width, v.height) for v in derived] == [
            (v.variant, v.format, v.width, v.height) for v in direct
        ]
    assert hamming_distance(fingerprint(original).phash, fingerprint(working).phash) <= 4


def test_a_truncated_file_fails_when_the_working_copy_is_made():
    original = open_original(truncated_jpeg())
    with pytest.raises(ImageError) as caught:
        original.reduced(1920, 1920)
    assert caught.value.reason is FailureReason.CORRUPT
