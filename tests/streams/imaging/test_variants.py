"""Web variants: the default spec, sizes, orientation, stripped metadata, colour, determinism."""

import hashlib
import io
import typing

import numpy as np
import pytest
from PIL import Image, ImageCms

from photostream import media
from streams.imaging import DEFAULT_VARIANTS, RenderedVariant, VariantSpec, open_original, render, variant_count
from streams.imaging.variants import Format
from tests.streams.imaging.photos import (
    BLUE,
    GREEN,
    MAKE,
    RED,
    SOFTWARE,
    animated_gif,
    cmyk_jpeg,
    display_p3_profile,
    encode,
    landmark_picture,
    make_oriented_photo,
    make_photo,
    rgba16_png,
    solid_cmyk_jpeg,
    srgb_profile,
    tiny_png,
)

WEB, THUMB, SQUARE = DEFAULT_VARIANTS
EXIF_MARKER = "photostream-exif-marker"
XMP_MARKER = b"photostream-xmp-marker"


def _render_all(
    data: bytes, specs: tuple[VariantSpec, ...] = DEFAULT_VARIANTS
) -> dict[tuple[str, str], RenderedVariant]:
    original = open_original(data)
    return {(out.variant, out.format): out for spec in specs for out in render(original, spec)}


def _decoded(variant: RenderedVariant) -> Image.Image:
    image = Image.open(io.BytesIO(variant.data))
    image.load()
    return image


def _colour_at(image: Image.Image, x: int, y: int) -> np.ndarray:
    """Mean RGB of a 5x5 patch, away from JPEG ringing at edges."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    return pixels[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].reshape(-1, 3).mean(axis=0)


def _close(colour: np.ndarray, expected: tuple[int, int, int], tolerance: float = 12) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() <= tolerance)


@pytest.fixture(scope="module")
def large_landscape() -> dict[tuple[str, str], RenderedVariant]:
    """The default variants of a 2000x1000 photo carrying EXIF (with GPS), XMP and an sRGB profile."""
    data = make_photo(
        2000,
        1000,
        exif={MAKE: "PhotostreamTestCam", SOFTWARE: EXIF_MARKER},
        orientation=1,
        gps=(-33.856784, -70.648270, -12.25),
        icc=srgb_profile(),
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + XMP_MARKER + b"</x:xmpmeta>",
    )
    return _render_all(data)


def test_default_spec_is_five_objects():
    assert variant_count(DEFAULT_VARIANTS) == 5


def test_default_spec_renders_web_thumb_and_square(large_landscape):
    assert sorted(large_landscape) == [
        ("square", "webp"),
        ("thumb", "jpeg"),
        ("thumb", "webp"),
        ("web", "jpeg"),
        ("web", "webp"),
    ]


def test_content_type_and_extension_match_the_encoding(large_landscape):
    kinds = {(out.format, out.content_type, out.extension) for out in large_landscape.values()}
    assert kinds == {("webp", "image/webp", "webp"), ("jpeg", "image/jpeg", "jpg")}


def test_encoded_bytes_are_the_declared_format(large_landscape):
    assert {out.format: _decoded(out).format for out in large_landscape.values()} == {"webp": "WEBP", "jpeg": "JPEG"}


@pytest.mark.parametrize(
    ("key", "size"),
    [
        (("web", "webp"), (1920, 960)),
        (("web", "jpeg"), (1920, 960)),
        (("thumb", "webp"), (300, 150)),
        (("thumb", "jpeg"), (300, 150)),
        (("square", "webp"), (150, 150)),
    ],
)
def test_variant_sizes_of_a_large_landscape(large_landscape, key, size):
    variant = large_landscape[key]
    assert ((variant.width, variant.height), _decoded(variant).size) == (size, size)


def test_long_side_of_a_portrait_is_the_box():
    assert {(out.width, out.height) for out in render(open_original(make_photo(400, 800)), THUMB)} == {(150, 300)}


@pytest.mark.parametrize("spec", [WEB, THUMB], ids=["web", "thumb"])
def test_small_input_is_never_upscaled(spec):
    assert {(out.width, out.height) for out in render(open_original(make_photo(200, 100)), spec)} == {(200, 100)}


@pytest.mark.parametrize("size", [(200, 100), (100, 200), (120, 90)])
def test_square_is_never_larger_than_the_box_or_the_input(size):
    (square,) = render(open_original(make_photo(*size)), SQUARE)
    assert square.width <= min(150, size[0])
    assert square.height <= min(150, size[1])


def test_tiny_1x1_input_gives_1x1_variants():
    assert {(out.width, out.height) for out in _render_all(tiny_png()).values()} == {(1, 1)}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_comes_out_upright(orientation):
    upright = landmark_picture(320, 240)
    for variant in render(open_original(make_oriented_photo(orientation, upright)), THUMB):
        image = _decoded(variant).convert("RGB")
        assert image.size == (300, 225), variant.format
        reference = np.asarray(upright.resize(image.size, Image.Resampling.LANCZOS), dtype=np.float64)
        difference = np.abs(np.asarray(image, dtype=np.float64) - reference).mean()
        assert difference < 6, f"{variant.format}: mean absolute difference {difference:.1f} from upright"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_has_its_landmarks_in_place(orientation):
    (variant,) = render(open_original(make_oriented_photo(orientation)), VariantSpec("check", 320, 320, ("webp",)))
    image = _decoded(variant)
    width, height = image.size
    corners = {
        "top-left red": (_colour_at(image, 10, 10), RED),
        "top-right green": (_colour_at(image, width - 11, 10), GREEN),
        "bottom-right blue": (_colour_at(image, width - 11, height - 11), BLUE),
    }
    assert (width, height) == (320, 240)
    assert {name for name, (colour, expected) in corners.items() if not _close(colour, expected)} == set()


def test_no_exif_in_any_variant(large_landscape):
    assert {key: len(_decoded(out).getexif()) for key, out in large_landscape.items()} == dict.fromkeys(
        large_landscape, 0
    )


@pytest.mark.parametrize("marker", [b"Exif", EXIF_MARKER.encode(), b"PhotostreamTestCam", XMP_MARKER])
def test_metadata_bytes_are_absent_from_every_variant(large_landscape, marker):
    assert [key for key, out in large_landscape.items() if marker in out.data] == []


def test_no_icc_profile_in_any_variant(large_landscape):
    assert [key for key, out in large_landscape.items() if _decoded(out).info.get("icc_profile")] == []


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(cmyk_jpeg(), id="cmyk-jpeg"),
        pytest.param(rgba16_png(), id="rgba16-png"),
        pytest.param(make_photo(160, 120, mode="L"), id="grey-jpeg"),
        pytest.param(make_photo(160, 120, fmt="PNG", mode="LA"), id="grey-alpha-png"),
        pytest.param(make_photo(160, 120, fmt="PNG", mode="I;16"), id="grey16-png"),
        pytest.param(make_photo(160, 120, fmt="PNG", mode="P"), id="palette-png"),
        pytest.param(make_photo(160, 120, fmt="PNG", mode="1"), id="bilevel-png"),
        pytest.param(make_photo(160, 120, fmt="TIFF"), id="tiff"),
        pytest.param(make_photo(160, 120, fmt="WEBP"), id="webp"),
        pytest.param(make_photo(160, 120, fmt="HEIF"), id="heif"),
        pytest.param(animated_gif(), id="animated-gif"),
    ],
)
def test_every_variant_is_8_bit_rgb_or_rgba(data):
    modes = {key: _decoded(out).mode for key, out in _render_all(data).items()}
    assert {key: mode for key, mode in modes.items() if mode not in ("RGB", "RGBA")} == {}


@pytest.mark.parametrize(
    ("rgb", "dominant"),
    [((200, 30, 30), 0), ((20, 180, 20), 1), ((30, 60, 200), 2)],
    ids=["red", "green", "blue"],
)
def test_cmyk_input_keeps_its_hue(rgb, dominant):
    # Pillow's RGB->CMYK is naive and libvips converts back through a real CMYK profile, so only
    # the hue survives exactly; an inverted (Adobe) CMYK reading would turn red into cyan.
    (variant,) = render(open_original(solid_cmyk_jpeg(rgb)), VariantSpec("check", 64, 64, ("webp",)))
    colour = _colour_at(_decoded(variant), 32, 24)
    others = [channel for index, channel in enumerate(colour) if index != dominant]
    assert colour[dominant] > max(others) + 30, colour


def test_16_bit_alpha_is_kept_in_webp():
    (webp, _jpeg) = render(open_original(rgba16_png(160, 120)), THUMB)
    image = _decoded(webp)
    assert image.mode == "RGBA"
    assert (image.getpixel((20, 60))[3], image.getpixel((140, 60))[3]) == (255, pytest.approx(128, abs=2))


def test_16_bit_alpha_is_flattened_onto_white_in_jpeg():
    (_webp, jpeg) = render(open_original(rgba16_png(160, 120)), THUMB)
    image = _decoded(jpeg)
    # The right half is half transparent: flattened onto white, its darkest channel is lifted to ~128+.
    assert image.mode == "RGB"
    assert min(_colour_at(image, 140, 60)) > 100


def test_animated_gif_renders_its_first_frame():
    (variant,) = render(open_original(animated_gif((RED, GREEN, BLUE))), VariantSpec("check", 64, 64, ("webp",)))
    assert _close(_colour_at(_decoded(variant), 32, 24), RED)


def test_grey_input_renders_grey_rgb():
    (variant,) = render(open_original(make_photo(160, 120, mode="L")), VariantSpec("check", 160, 160, ("webp",)))
    pixels = np.asarray(_decoded(variant).convert("RGB"), dtype=np.int16)
    assert np.abs(pixels[..., 0] - pixels[..., 2]).max() <= 3


def test_srgb_tagged_colours_are_unchanged():
    data = encode(Image.new("RGB", (64, 48), (60, 160, 60)), "PNG", icc=srgb_profile())
    (variant,) = render(open_original(data), VariantSpec("check", 64, 64, ("webp",), quality=100))
    assert _close(_colour_at(_decoded(variant), 32, 24), (60, 160, 60), tolerance=3)


def test_wide_gamut_colours_are_converted_to_srgb():
    p3 = display_p3_profile()
    data = encode(Image.new("RGB", (64, 48), (60, 160, 60)), "PNG", icc=p3)
    expected = ImageCms.profileToProfile(
        Image.new("RGB", (1, 1), (60, 160, 60)),
        ImageCms.ImageCmsProfile(io.BytesIO(p3)),
        ImageCms.createProfile("sRGB"),
    ).getpixel((0, 0))
    (variant,) = render(open_original(data), VariantSpec("check", 64, 64, ("webp",), quality=100))
    assert _close(_colour_at(_decoded(variant), 32, 24), expected, tolerance=4)


def test_sha256_is_the_digest_of_the_data(large_landscape):
    assert {key: out.sha256 for key, out in large_landscape.items()} == {
        key: hashlib.sha256(out.data).hexdigest() for key, out in large_landscape.items()
    }


def test_rendering_is_deterministic():
    data = make_photo(480, 360, seed=5)
    first, second = _render_all(data), _render_all(data)
    assert {key: out.data for key, out in first.items()} == {key: out.data for key, out in second.items()}


def test_custom_spec_with_one_format():
    (variant,) = render(open_original(make_photo(640, 480)), VariantSpec("small-2x", 64, 64, ("jpeg",), quality=60))
    assert (variant.variant, variant.format, variant.width, variant.height) == ("small-2x", "jpeg", 64, 48)


@pytest.mark.parametrize("name", ["web", "thumb_small", "square-2x", "W1920"])
def test_variant_names_of_letters_digits_dash_and_underscore_are_accepted(name):
    assert VariantSpec(name, 10, 10).name == name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"name": "a/b"}, "must be letters", id="slash"),
        pytest.param({"name": ".."}, "must be letters", id="dot-dot"),
        pytest.param({"name": "../web"}, "must be letters", id="traversal"),
        pytest.param({"name": ""}, "must be letters", id="empty-name"),
        pytest.param({"name": "web thumb"}, "must be letters", id="space"),
        pytest.param({"width": 0}, "positive size", id="zero-width"),
        pytest.param({"height": 0}, "positive size", id="zero-height"),
        pytest.param({"width": -5}, "positive size", id="negative-width"),
        pytest.param({"formats": ("gif",)}, "formats must be among", id="unknown-format"),
        pytest.param({"formats": ()}, "formats must be among", id="no-format"),
        pytest.param({"quality": 0}, "quality must be 1-100", id="quality-0"),
        pytest.param({"quality": 101}, "quality must be 1-100", id="quality-101"),
    ],
)
def test_invalid_variant_spec_is_refused(kwargs, message):
    arguments = {"name": "web", "width": 100, "height": 100} | kwargs
    with pytest.raises(ValueError, match=message):
        VariantSpec(**arguments)


def test_spec_formats_are_the_media_tables_variant_formats():
    assert typing.get_args(Format) == tuple(fmt.name for fmt in media.VARIANT_FORMATS)
