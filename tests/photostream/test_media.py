"""The media table: formats told from their bytes, their names, and no image engine behind them."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from photostream import media
from photostream.media import SNIFF_BYTES
from tests.corpus import CORPUS, missing

REPO = Path(__file__).resolve().parents[2]
IMAGE_ENGINES = ("pyvips", "faust", "numpy", "PIL", "pillow_heif")


def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (8, 6), "red").save(out, format=fmt)
    return out.getvalue()


def _sniffed(head: bytes) -> str | None:
    fmt = media.sniff(head)
    return fmt.content_type if fmt else None


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
    assert _sniffed(_encoded(fmt, mode)[:SNIFF_BYTES]) == expected


def test_heif_written_by_pillow_heif():
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    try:
        data = _encoded("HEIF")
    except (KeyError, OSError, ValueError) as exc:  # encoder missing from this build
        pytest.skip(f"no HEIF encoder: {exc}")
    assert _sniffed(data[:SNIFF_BYTES]) in {"image/heic", "image/heif"}


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, this is text pretending to be a jpg",
        b"\xff\xd8",  # too short to be a JPEG
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",  # an MP4, not an image
        b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmiaf",  # AVIF alone: a variant format, not an upload
        b"%PDF-1.7\n",
    ],
)
def test_not_accepted(head):
    assert media.sniff(head) is None


def test_heic_wins_over_the_heif_brands_it_also_carries():
    head = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    assert media.sniff(head) is media.HEIC


def test_real_phone_and_camera_files_when_present():
    if not CORPUS.is_dir():
        missing(f"the shared corpus is not beside this checkout ({CORPUS})")
    expected = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tiff": "image/tiff", ".heic": "image/heic"}
    seen = 0
    for path in CORPUS.rglob("*"):
        want = expected.get(path.suffix.lower())
        if want is None or "invalid" in path.parts:
            continue
        assert _sniffed(path.read_bytes()[:SNIFF_BYTES]) == want, path.name
        seen += 1
    heif = CORPUS / "heic" / "samplefilehub.heif"
    if heif.exists():
        assert _sniffed(heif.read_bytes()[:SNIFF_BYTES]) in {"image/heic", "image/heif"}
    assert seen > 0


def test_accepted_formats_for_messages():
    assert media.ACCEPTED_LABELS == "JPEG, PNG, WebP, TIFF, GIF or HEIC/HEIF"


@pytest.mark.parametrize(
    ("name", "content_type", "extension"),
    [
        ("webp", "image/webp", "webp"),
        ("jpeg", "image/jpeg", "jpg"),
        ("avif", "image/avif", "avif"),
        ("jxl", "image/jxl", "jxl"),  # unknown to this table (a newer worker's): its name is kept
    ],
)
def test_content_types_and_key_extensions(name, content_type, extension):
    assert media.content_type(name) == content_type
    assert media.extension(name) == extension


@pytest.mark.parametrize("module", ["producers.gateway", "producers.service", "sinks.s3", "sinks.service"])
def test_services_that_decode_no_pixels_import_no_image_engine(module):
    # A fresh interpreter: this test process has imported PIL and pillow_heif above.
    probe = f"import sys, {module}; print(','.join(m for m in {IMAGE_ENGINES!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
