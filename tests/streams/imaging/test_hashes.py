"""Fingerprints: the perceptual hash finds near-duplicates, the BlurHash placeholder follows the aspect."""

import itertools
import re
import warnings

import pytest
from PIL import Image

from streams.imaging import fingerprint, hamming_distance, open_original
from tests.streams.imaging.photos import encode, make_oriented_photo, make_photo, make_picture

BASE83 = re.compile(r"^[0-9A-Za-z#$%*+,\-.:;=?@\[\]^_{|}~]+$")


def _phash(data: bytes) -> str:
    return fingerprint(open_original(data)).phash


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return make_picture(640, 480, seed=1)


@pytest.fixture(scope="module")
def reference_phash(picture) -> str:
    return _phash(encode(picture, "JPEG", quality=95))


def test_phash_is_16_hex_digits(reference_phash):
    assert re.fullmatch(r"[0-9a-f]{16}", reference_phash)


def test_hamming_distance_counts_differing_bits():
    assert (hamming_distance("0" * 16, "0" * 16), hamming_distance("0" * 16, "f" * 16), hamming_distance("1", "3")) == (
        0,
        64,
        1,
    )


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda p: encode(p, "JPEG", quality=40), id="jpeg-quality-40"),
        pytest.param(lambda p: encode(p, "PNG"), id="png"),
        pytest.param(lambda p: encode(p, "WEBP", quality=60), id="webp"),
        pytest.param(lambda p: encode(p.resize((512, 384), Image.Resampling.LANCZOS), "JPEG"), id="resized-80pct"),
        pytest.param(lambda p: encode(p.resize((160, 120), Image.Resampling.LANCZOS), "JPEG"), id="resized-25pct"),
    ],
)
def test_same_picture_re_encoded_is_a_near_duplicate(picture, reference_phash, variant):
    assert hamming_distance(reference_phash, _phash(variant(picture))) <= 6


def test_different_pictures_are_far_apart():
    hashes = {seed: _phash(make_photo(320, 240, seed=seed)) for seed in range(6)}
    distances = {(a, b): hamming_distance(hashes[a], hashes[b]) for a, b in itertools.combinations(hashes, 2)}
    assert {pair: distance for pair, distance in distances.items() if distance <= 10} == {}


@pytest.mark.parametrize("orientation", range(2, 9))
def test_orientation_tagged_copy_has_the_upright_phash(picture, reference_phash, orientation):
    assert hamming_distance(reference_phash, _phash(make_oriented_photo(orientation, picture))) <= 4


def test_alpha_is_flattened_before_hashing():
    # Transparent pixels hash as white: an RGBA picture and the same picture flattened agree.
    rgba = make_picture(320, 240, seed=2, mode="RGBA")
    flattened = Image.new("RGB", rgba.size, "white")
    flattened.paste(rgba, mask=rgba.getchannel("A"))
    assert hamming_distance(_phash(encode(rgba, "PNG")), _phash(encode(flattened, "PNG"))) <= 4


@pytest.mark.parametrize(
    ("size", "components"),
    [((640, 480), "L"), ((480, 640), "T"), ((300, 100), "L"), ((100, 300), "T"), ((1, 1), "L")],
    ids=["landscape", "portrait", "panorama", "tall", "1x1"],
)
def test_placeholder_is_a_blurhash_whose_components_follow_the_aspect(size, components):
    # The first character encodes the component grid: "L" is 4x3 (landscape), "T" is 3x4 (portrait).
    placeholder = fingerprint(open_original(make_photo(*size, fmt="PNG"))).placeholder
    assert 20 <= len(placeholder) <= 40
    assert BASE83.match(placeholder)
    assert placeholder[0] == components


def test_placeholder_differs_between_pictures():
    first = fingerprint(open_original(make_photo(320, 240, seed=0))).placeholder
    second = fingerprint(open_original(make_photo(320, 240, seed=1))).placeholder
    assert first != second


def test_fingerprint_emits_no_warning():
    # Guards against dependencies calling deprecated Pillow API (blurhash-python's Image.getdata did).
    original = open_original(make_photo(64, 48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fingerprint(original)
