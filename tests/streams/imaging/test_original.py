"""Opening originals: formats, sizes, orientation, limits, and every way an upload can be bad."""

import time

import pytest
import pyvips

from schemas.events import FailureReason
from streams.imaging import (
    DEFAULT_VARIANTS,
    ImageError,
    Limits,
    fingerprint,
    hamming_distance,
    open_original,
    read_metadata,
    render,
)
from streams.imaging.original import compute
from tests.streams.imaging.photos import (
    decompression_bomb_png,
    encode,
    heif_grid_of_one_tile,
    heif_with_dangling_property_association,
    jpeg_header_then_garbage,
    make_oriented_photo,
    make_photo,
    make_picture,
    noisy_png,
    srgb_profile,
    text_named_jpeg,
    truncated_jpeg,
)

WEB, THUMB, SQUARE = DEFAULT_VARIANTS


@pytest.fixture(scope="module")
def noisy_9mp_png() -> bytes:
    """A 3000x3000 PNG of noise: decoding it takes tens of milliseconds on any machine."""
    return noisy_png(3000, 3000)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tiff"), ("GIF", "gif"), ("HEIF", "heif")],
)
def test_format_is_read_from_the_bytes(fmt, expected):
    assert open_original(make_photo(96, 64, fmt=fmt)).format == expected


def test_stored_size_bands_and_alpha_of_rgba_png():
    original = open_original(make_photo(96, 64, fmt="PNG", mode="RGBA"))
    assert (original.width, original.height, original.bands, original.has_alpha) == (96, 64, 4, True)


def test_embedded_icc_profile_is_kept_on_the_original():
    profile = srgb_profile()
    assert open_original(make_photo(96, 64, icc=profile)).icc_profile == profile


def test_orientation_defaults_to_1_without_exif():
    assert open_original(make_photo(96, 64)).orientation == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_read_from_exif(orientation):
    assert open_original(make_oriented_photo(orientation)).orientation == orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_display_size_is_the_upright_size(orientation):
    # The landmark picture is 320x240 upright; 5-8 store it as 240x320.
    original = open_original(make_oriented_photo(orientation))
    assert original.display_size == (320, 240)


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_stored_size_of_quarter_turned_orientations_is_portrait(orientation):
    original = open_original(make_oriented_photo(orientation))
    assert (original.width, original.height) == (240, 320)


def test_heif_opens_with_its_size_and_orientation_1():
    original = open_original(make_photo(96, 64, fmt="HEIF"))
    assert (original.display_size, original.orientation) == ((96, 64), 1)


def test_empty_bytes_are_corrupt():
    with pytest.raises(ImageError) as caught:
        open_original(b"")
    assert caught.value.reason is FailureReason.CORRUPT


def test_text_named_jpeg_is_unsupported():
    with pytest.raises(ImageError) as caught:
        open_original(text_named_jpeg())
    assert caught.value.reason is FailureReason.UNSUPPORTED


def test_random_bytes_after_a_jpeg_header_are_corrupt():
    with pytest.raises(ImageError) as caught:
        open_original(jpeg_header_then_garbage())
    assert caught.value.reason is FailureReason.CORRUPT


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n", id="pdf"),
        pytest.param(
            b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48"/></svg>',
            id="svg",
        ),
        pytest.param(b"P6\n2 2\n255\n" + bytes(12), id="ppm"),
    ],
)
def test_formats_libvips_could_load_but_the_gateway_refuses_are_unsupported(data):
    with pytest.raises(ImageError) as caught:
        open_original(data)
    assert caught.value.reason is FailureReason.UNSUPPORTED


def test_truncated_jpeg_opens_from_its_intact_header():
    original = open_original(truncated_jpeg(640, 480))
    assert (original.width, original.height) == (640, 480)


def test_truncated_jpeg_fingerprint_is_corrupt():
    original = open_original(truncated_jpeg())
    with pytest.raises(ImageError) as caught:
        fingerprint(original)
    assert caught.value.reason is FailureReason.CORRUPT


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(WEB, id="web"),
        pytest.param(THUMB, id="thumb"),
        pytest.param(SQUARE, id="square"),
    ],
)
def test_truncated_jpeg_render_is_corrupt(spec):
    original = open_original(truncated_jpeg())
    with pytest.raises(ImageError) as caught:
        render(original, spec)
    assert caught.value.reason is FailureReason.CORRUPT


@pytest.mark.parametrize("orientation", [2, 6])
def test_truncated_jpeg_with_an_orientation_tag_fingerprint_is_corrupt(orientation):
    data = make_oriented_photo(orientation, make_picture(640, 480), quality=90)
    original = open_original(data[: len(data) // 2])
    with pytest.raises(ImageError) as caught:
        fingerprint(original)
    assert caught.value.reason is FailureReason.CORRUPT


def test_decompression_bomb_is_refused_at_open_without_decoding():
    started = time.monotonic()
    with pytest.raises(ImageError) as caught:
        open_original(decompression_bomb_png(50_000, 50_000))
    assert caught.value.reason is FailureReason.TOO_MANY_PIXELS
    assert time.monotonic() - started < 1.0  # 7.5 GB of pixels were never allocated


def test_pixel_limit_accepts_exactly_the_limit():
    original = open_original(make_photo(64, 48, fmt="PNG"), Limits(max_pixels=64 * 48))
    assert original.width * original.height == 64 * 48


def test_pixel_limit_refuses_one_more_row():
    with pytest.raises(ImageError) as caught:
        open_original(make_photo(64, 49, fmt="PNG"), Limits(max_pixels=64 * 48))
    assert caught.value.reason is FailureReason.TOO_MANY_PIXELS


def test_pixel_limit_applies_to_heif_before_decoding():
    with pytest.raises(ImageError) as caught:
        open_original(make_photo(64, 49, fmt="HEIF"), Limits(max_pixels=64 * 48))
    assert caught.value.reason is FailureReason.TOO_MANY_PIXELS


def test_fingerprint_over_the_decode_time_limit_is_corrupt(noisy_9mp_png):
    original = open_original(noisy_9mp_png, Limits(max_decode_seconds=0.001))
    with pytest.raises(ImageError, match=r"took longer than 0\.001 s") as caught:
        fingerprint(original)
    assert caught.value.reason is FailureReason.CORRUPT


def test_render_over_the_decode_time_limit_is_corrupt(noisy_9mp_png):
    original = open_original(noisy_9mp_png, Limits(max_decode_seconds=0.001))
    with pytest.raises(ImageError, match=r"took longer than 0\.001 s") as caught:
        render(original, WEB)
    assert caught.value.reason is FailureReason.CORRUPT


def test_attention_crop_respects_the_decode_time_limit(noisy_9mp_png):
    # The attention crop decodes all 9 megapixels (45-100 ms, more under load);
    # encoding the 150x150 result from memory takes a few milliseconds, far below the limit.
    original = open_original(noisy_9mp_png, Limits(max_decode_seconds=0.015))
    with pytest.raises(ImageError, match="took longer than"):
        render(original, SQUARE)


def test_work_that_ends_past_the_limit_is_refused_even_when_libvips_never_looked():
    # libvips checks the clock between output chunks only; a write that never gives it a chance
    # to stop must still be refused when it ends late, as a slow decode of few chunks would be.
    def slow_write(image):
        time.sleep(0.05)
        return image.width

    with pytest.raises(ImageError, match=r"took longer than 0\.01 s") as caught:
        compute(pyvips.Image.black(8, 8), Limits(max_decode_seconds=0.01), slow_write)
    assert caught.value.reason is FailureReason.CORRUPT


def test_work_within_the_limit_returns_its_result():
    assert compute(pyvips.Image.black(8, 8), Limits(max_decode_seconds=5), lambda image: image.avg()) == 0


def test_truncated_heif_is_corrupt():
    data = encode(make_picture(96, 64), "HEIF")
    with pytest.raises(ImageError) as caught:
        open_original(data[: len(data) // 2])
    assert caught.value.reason is FailureReason.CORRUPT


def test_heif_with_no_readable_image_is_corrupt():
    with pytest.raises(ImageError) as caught:
        open_original(heif_with_dangling_property_association())
    assert caught.value.reason is FailureReason.CORRUPT


def test_heif_grid_whose_tiles_decode_to_too_many_pixels_is_refused_before_decoding():
    # A 2000x2000 picture (4 MP, within the limit) made of 31 x 31 tiles of 512 px: 252 megapixels
    # to decode, for minutes. The header says so; nothing is decoded.
    data = heif_grid_of_one_tile(512, 31, 31, output=(2000, 2000))
    started = time.monotonic()
    with pytest.raises(ImageError, match="grid tiles") as caught:
        open_original(data)
    assert caught.value.reason is FailureReason.TOO_MANY_PIXELS
    assert time.monotonic() - started < 5  # generous: only the container was parsed


def test_heif_that_decodes_slowly_within_the_pixel_limit_fails_at_the_time_limit():
    # 31 x 31 tiles of 320 px: 98 megapixels, within the limit; libheif needs about 15 s for them
    # here (more on a busy machine) and cannot be interrupted, so the decoder process is killed.
    data = heif_grid_of_one_tile(320, 31, 31)
    open_original(make_photo(32, 32, fmt="HEIF"))  # a decoder process is up: its start is not timed
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"took longer than 0\.5 s") as caught:
        open_original(data, Limits(max_decode_seconds=0.5))
    assert caught.value.reason is FailureReason.CORRUPT
    assert time.monotonic() - started < 5  # generous: 10x the limit, a third of the decode


def test_heif_decoding_still_works_after_a_decode_was_cut_short():
    with pytest.raises(ImageError):
        open_original(heif_grid_of_one_tile(320, 31, 31), Limits(max_decode_seconds=0.2))
    original = open_original(make_photo(96, 64, fmt="HEIF"))
    assert (original.width, original.height) == (96, 64)


def test_heif_grid_within_the_limits_decodes_to_its_declared_size():
    original = open_original(heif_grid_of_one_tile(64, 3, 2))
    assert (original.format, original.width, original.height, original.bands) == ("heif", 192, 128, 3)


# Originals on disk: a large original is opened from its path and read as it decodes.


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "GIF", "HEIF"])
def test_an_original_on_disk_opens_as_its_bytes_do(tmp_path, fmt):
    data = make_photo(320, 240, seed=4, fmt=fmt)
    path = tmp_path / f"original.{fmt.lower()}"
    path.write_bytes(data)
    on_disk, in_memory = open_original(path), open_original(data)
    assert (on_disk.format, on_disk.width, on_disk.height, on_disk.bands) == (
        in_memory.format,
        in_memory.width,
        in_memory.height,
        in_memory.bands,
    )
    assert on_disk.size_bytes == len(data)
    assert hamming_distance(fingerprint(on_disk).phash, fingerprint(in_memory).phash) == 0
    assert {(v.width, v.height) for v in render(on_disk, THUMB)} == {
        (v.width, v.height) for v in render(in_memory, THUMB)
    }


def test_metadata_of_an_original_on_disk_comes_from_the_file(tmp_path):
    data = make_oriented_photo(6)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert read_metadata(open_original(path)) == read_metadata(open_original(data))


def test_a_path_that_looks_like_libvips_options_is_just_a_path(tmp_path):
    path = tmp_path / "photo[shrink=8].jpg"
    path.write_bytes(make_photo(320, 240))
    (variant, _jpeg) = render(open_original(path), THUMB)
    assert (variant.width, variant.height) == (300, 225)


def test_a_truncated_original_on_disk_is_corrupt_when_decoded(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(truncated_jpeg())
    with pytest.raises(ImageError) as caught:
        fingerprint(open_original(path))
    assert caught.value.reason is FailureReason.CORRUPT


def test_an_original_on_disk_that_is_gone_is_the_callers_error_not_the_uploads(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_original(tmp_path / "gone.jpg")


@pytest.mark.parametrize(("data", "reason"), [(b"", FailureReason.CORRUPT), (b"plain text", FailureReason.UNSUPPORTED)])
def test_bad_originals_on_disk_fail_as_their_bytes_do(tmp_path, data, reason):
    path = tmp_path / "upload"
    path.write_bytes(data)
    with pytest.raises(ImageError) as caught:
        open_original(path)
    assert caught.value.reason is reason
