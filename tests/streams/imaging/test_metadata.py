"""Metadata: what the camera wrote in EXIF, what libvips knows, and odd EXIF that must never raise."""

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL.TiffImagePlugin import IFDRational

from streams.imaging import ImageError, icc_description, open_original, read_metadata
from tests.streams.imaging.photos import (
    DATETIME_ORIGINAL,
    EXPOSURE_TIME,
    F_NUMBER,
    FOCAL_LENGTH,
    FOCAL_LENGTH_35MM,
    GPS_ALTITUDE,
    GPS_IFD,
    GPS_LATITUDE,
    GPS_LATITUDE_REF,
    ISO,
    LENS_MAKE,
    LENS_MODEL,
    MAKE,
    MODEL,
    OFFSET_TIME_ORIGINAL,
    SOFTWARE,
    encode,
    make_exif,
    make_photo,
    make_picture,
    srgb_profile,
)

CAMERA_EXIF = {
    MAKE: "Canon",
    MODEL: "Canon EOS 40D",
    SOFTWARE: "photostream-tests 1.0",
    DATETIME_ORIGINAL: "2024:05:30 15:56:01",
    OFFSET_TIME_ORIGINAL: "+02:00",
    EXPOSURE_TIME: Fraction(1, 250),
    F_NUMBER: Fraction(71, 10),
    ISO: 400,
    FOCAL_LENGTH: Fraction(135),
    FOCAL_LENGTH_35MM: 216,
    LENS_MAKE: "Canon",
    LENS_MODEL: "EF70-200mm f/2.8L IS USM",
}


def _metadata(data: bytes, *, keep_gps: bool = False):
    return read_metadata(open_original(data), keep_gps=keep_gps)


@pytest.fixture(scope="module")
def camera_photo() -> bytes:
    """A 640x480 JPEG, stored turned for orientation 6 (displayed 480x640), with a camera's EXIF."""
    return make_photo(640, 480, exif=CAMERA_EXIF, orientation=6)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("camera_make", "Canon"),
        ("camera_model", "Canon EOS 40D"),
        ("lens", "Canon EF70-200mm f/2.8L IS USM"),
        ("iso", 400),
        ("exposure_time", 0.004),
        ("f_number", 7.1),
        ("focal_length_mm", 135.0),
        ("focal_length_35mm", 216),
        ("captured_at", "2024-05-30T15:56:01"),
        ("captured_at_utc_offset", "+02:00"),
        ("software", "photostream-tests 1.0"),
        ("orientation", 6),
        ("format", "jpeg"),
        ("bands", 3),
        ("has_alpha", False),
    ],
)
def test_exif_and_header_fields_round_trip(camera_photo, field, expected):
    assert getattr(_metadata(camera_photo), field) == expected


def test_width_and_height_are_the_display_size_after_orientation(camera_photo):
    metadata = _metadata(camera_photo)
    assert (metadata.width, metadata.height) == (480, 640)


def test_megapixels_are_width_times_height_rounded(camera_photo):
    assert _metadata(camera_photo).megapixels == 0.31


def test_bytes_is_the_file_size(camera_photo):
    assert _metadata(camera_photo).bytes == len(camera_photo)


def test_lens_model_already_naming_its_maker_is_not_prefixed_twice():
    data = make_photo(64, 48, exif={LENS_MAKE: "Sigma", LENS_MODEL: "Sigma 35mm F1.4 DG HSM"})
    assert _metadata(data).lens == "Sigma 35mm F1.4 DG HSM"


def test_bands_and_alpha_of_rgba_png():
    metadata = _metadata(make_photo(64, 48, fmt="PNG", mode="RGBA"))
    assert (metadata.format, metadata.bands, metadata.has_alpha) == ("png", 4, True)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "HEIF"])
def test_exif_ifd0_is_read_from_other_containers(fmt):
    assert _metadata(make_photo(64, 48, fmt=fmt, exif={MAKE: "Canon"})).camera_make == "Canon"


# Pillow's TIFF writer keeps IFD0 tags only, so TIFF is not in this list.
@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_exif_sub_ifd_is_read_from_other_containers(fmt):
    assert _metadata(make_photo(64, 48, fmt=fmt, exif={ISO: 800})).iso == 800


def test_file_without_exif_has_no_camera_fields():
    metadata = _metadata(make_photo(64, 48, fmt="PNG"))
    camera_fields = ("camera_make", "camera_model", "lens", "iso", "exposure_time", "captured_at", "software")
    assert {field: getattr(metadata, field) for field in camera_fields} == dict.fromkeys(camera_fields)


@pytest.mark.parametrize(
    ("gps", "expected"),
    [
        pytest.param((48.858370, 2.294481, 35.5), (48.858370, 2.294481, 35.5), id="north-east-above-sea"),
        pytest.param((-33.856784, -70.648270, -12.25), (-33.856784, -70.648270, -12.25), id="south-west-below-sea"),
    ],
)
def test_gps_is_signed_decimal_degrees_when_kept(gps, expected):
    metadata = _metadata(make_photo(64, 48, gps=gps), keep_gps=True)
    actual = (metadata.gps_latitude, metadata.gps_longitude, metadata.gps_altitude)
    assert actual == pytest.approx(expected, abs=1e-6)


def test_gps_is_dropped_unless_kept():
    metadata = _metadata(make_photo(64, 48, gps=(-33.856784, -70.648270, -12.25)), keep_gps=False)
    assert (metadata.gps_latitude, metadata.gps_longitude, metadata.gps_altitude) == (None, None, None)


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        pytest.param({EXPOSURE_TIME: IFDRational(1, 0)}, "exposure_time", id="zero-denominator"),
        pytest.param({EXPOSURE_TIME: IFDRational(0, 1)}, "exposure_time", id="zero-exposure"),
        pytest.param({F_NUMBER: "f/2.8"}, "f_number", id="text-f-number"),
        pytest.param({ISO: "ISO 100"}, "iso", id="text-iso"),
        pytest.param({DATETIME_ORIGINAL: "2024:13:01 10:00:00"}, "captured_at", id="month-13"),
        pytest.param({DATETIME_ORIGINAL: "2024:05:30 25:00:00"}, "captured_at", id="hour-25"),
        pytest.param({DATETIME_ORIGINAL: "0000:00:00 00:00:00"}, "captured_at", id="all-zero-date"),
        pytest.param({DATETIME_ORIGINAL: "yesterday"}, "captured_at", id="text-date"),
        pytest.param({OFFSET_TIME_ORIGINAL: "+25:00"}, "captured_at_utc_offset", id="offset-25h"),
    ],
)
def test_malformed_exif_value_becomes_none(tags, field):
    assert getattr(_metadata(make_photo(64, 48, exif=tags)), field) is None


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_out_of_range_orientation_becomes_none(orientation):
    assert _metadata(make_photo(64, 48, orientation=orientation)).orientation is None


def test_impossible_calendar_date_becomes_none():
    data = make_photo(64, 48, exif={DATETIME_ORIGINAL: "2023:02:30 10:00:00"})
    assert _metadata(data).captured_at is None


def test_gps_with_zero_denominators_becomes_none():
    exif = make_exif()
    gps = exif.get_ifd(GPS_IFD)
    gps[GPS_LATITUDE_REF] = "N"
    gps[GPS_LATITUDE] = (IFDRational(43, 0), IFDRational(0, 1), IFDRational(0, 1))
    gps[GPS_ALTITUDE] = IFDRational(5, 0)
    metadata = _metadata(encode(make_picture(64, 48), exif=exif), keep_gps=True)
    assert (metadata.gps_latitude, metadata.gps_altitude) == (None, None)


def test_latitude_beyond_the_pole_becomes_none():
    exif = make_exif()
    gps = exif.get_ifd(GPS_IFD)
    gps[GPS_LATITUDE_REF] = "N"
    gps[GPS_LATITUDE] = (IFDRational(95, 1), IFDRational(0, 1), IFDRational(0, 1))
    metadata = _metadata(encode(make_picture(64, 48), exif=exif), keep_gps=True)
    assert metadata.gps_latitude is None


def test_64_kb_software_string_is_truncated():
    # A JPEG APP1 segment cannot hold 64 KB of EXIF; PNG's eXIf chunk can.
    data = make_photo(64, 48, fmt="PNG", exif={SOFTWARE: "x" * 65536})
    software = _metadata(data).software
    assert software is None or (0 < len(software) <= 256 and set(software) == {"x"})


def test_non_printable_characters_are_dropped_from_text():
    data = make_photo(64, 48, exif={MAKE: "Can\x07on\x1b "})
    assert _metadata(data).camera_make == "Canon"


def test_icc_profile_description_is_read():
    description = _metadata(make_photo(64, 48, icc=srgb_profile())).icc_profile
    assert description
    assert "sRGB" in description


@pytest.mark.parametrize("profile", [b"garbage", b"", None, b"\x00" * 200])
def test_unreadable_icc_profile_has_no_description(profile):
    assert icc_description(profile) is None


# Arbitrary bytes in the EXIF segment of a valid JPEG.

FULL_EXIF_JPEG = make_photo(64, 48, exif=CAMERA_EXIF, orientation=6, gps=(-33.856784, -70.648270, -12.25))


def _exif_payload_span(jpeg: bytes) -> tuple[int, int]:
    """Return where the TIFF structure of the JPEG's APP1 Exif segment starts and ends."""
    position = 2
    while position + 4 <= len(jpeg):
        marker, length = jpeg[position + 1], int.from_bytes(jpeg[position + 2 : position + 4], "big")
        if marker == 0xE1 and jpeg[position + 4 : position + 10] == b"Exif\x00\x00":
            return position + 10, position + 2 + length
        position += 2 + length
    raise AssertionError("no APP1 Exif segment")


def _damaged(jpeg: bytes, offset: int, payload: bytes, *, overwrite: bool) -> bytes:
    start, end = _exif_payload_span(jpeg)
    tiff = jpeg[start:end]
    offset %= len(tiff) + 1
    if overwrite:
        tiff = tiff[:offset] + payload + tiff[offset + len(payload) :]
    else:
        tiff = tiff[:offset] + payload + tiff[offset:]
    tiff = tiff[: 65533 - 8]
    segment = b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff
    return jpeg[: start - 10] + segment + jpeg[end:]


def test_damage_helper_leaves_a_valid_jpeg_when_nothing_changes():
    assert _damaged(FULL_EXIF_JPEG, 0, b"", overwrite=False) == FULL_EXIF_JPEG


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset=st.integers(min_value=0, max_value=4096),
    payload=st.binary(min_size=1, max_size=64),
    overwrite=st.booleans(),
)
def test_arbitrary_bytes_in_the_exif_segment_never_make_read_metadata_raise(offset, payload, overwrite):
    data = _damaged(FULL_EXIF_JPEG, offset, payload, overwrite=overwrite)
    try:
        original = open_original(data)
    except ImageError:
        return  # libvips may refuse the file; the property is about read_metadata
    read_metadata(original, keep_gps=True)
