import io

import pytest
from PIL import Image

from streams.imaging.sniff import SNIFF_BYTES, sniff
from tests.corpus import CORPUS


def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (8, 6), "red").save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "expected"),
    [
        ("JPEG", "RGB", "image/jpeg"),
        ("PNG", "RGBA", "image/png"),
        ("WEBP", "RGB", "image/webp"),
        ("TIFF", "RGB", "image/tiff"),
        ("GIF", "P", "image/gif"),
    ],
)
def test_formats_pillow_writes(fmt, mode, expected):
    assert sniff(_encoded(fmt, mode)[:SNIFF_BYTES]) == expected


def test_heif_written_by_pillow_heif():
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    try:
        data = _encoded("HEIF")
    except (KeyError, OSError, ValueError) as exc:  # encoder missing from this build
        pytest.skip(f"no HEIF encoder: {exc}")
    assert sniff(data[:SNIFF_BYTES]) in {"image/heic", "image/heif"}


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, this is text pretending to be a jpg",
        b"\xff\xd8",  # too short to be a JPEG
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",  # an MP4, not an image
        b"%PDF-1.7\n",
    ],
)
def test_not_images(head):
    assert sniff(head) is None


def test_real_phone_and_camera_files_when_present():
    if not CORPUS.is_dir():
        pytest.skip("the shared corpus is not beside this checkout")
    expected = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tiff": "image/tiff", ".heic": "image/heic"}
    seen = 0
    for path in CORPUS.rglob("*"):
        want = expected.get(path.suffix.lower())
        if want is None or "invalid" in path.parts:
            continue
        assert sniff(path.read_bytes()[:SNIFF_BYTES]) == want, path.name
        seen += 1
    heif = CORPUS / "heic" / "samplefilehub.heif"
    if heif.exists():
        assert sniff(heif.read_bytes()[:SNIFF_BYTES]) in {"image/heic", "image/heif"}
    assert seen > 0
