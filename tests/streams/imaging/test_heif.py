"""HEIF decoding in child processes: the same pixels as pillow-heif in process, headers without decoding."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pillow_heif
import pytest

from schemas.events import FailureReason
from streams.imaging import ImageError, heif
from tests.streams.imaging.photos import heif_grid_of_one_tile, make_photo


def decoder_processes() -> set[int]:
    """This process's children running the HEIF decoder script."""
    children = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            children |= {int(pid) for pid in (task / "children").read_text().split()}
        except FileNotFoundError:  # a thread that ended while we looked
            continue
    found = set()
    for pid in children:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"heif_decoder.py" in command:
            found.add(pid)
    return found


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_pixels_are_pillow_heifs_own(mode):
    data = make_photo(101, 63, fmt="HEIF", mode=mode)  # odd sizes: rows may be padded in libheif
    expected = np.asarray(pillow_heif.open_heif(data, convert_hdr_to_8bit=True))
    pixels = heif.decode(data, 30)
    assert pixels.shape[:2] == (63, 101)
    assert np.array_equal(pixels.reshape(expected.shape), expected)


def test_a_file_on_disk_is_read_by_the_decoder_itself(tmp_path):
    data = make_photo(96, 64, fmt="HEIF")
    path = tmp_path / "photo.heic"
    path.write_bytes(data)
    assert np.array_equal(heif.decode(path, 30), heif.decode(data, 30))


def test_the_header_of_a_grid_counts_every_tile():
    header = heif.read_header(heif_grid_of_one_tile(64, 31, 31, output=(100, 100)))
    assert (header.width, header.height, header.tiles, header.decoded_pixels) == (100, 100, 961, 961 * 64 * 64)


def test_a_grid_of_more_tiles_than_libheif_allows_is_corrupt():
    with pytest.raises(ImageError, match="security limit") as caught:
        heif.read_header(heif_grid_of_one_tile(64, 32, 32))  # 1024 tiles, over libheif's 1000 references
    assert caught.value.reason is FailureReason.CORRUPT


def test_bytes_that_are_no_heif_are_corrupt_and_the_decoder_lives_on():
    with pytest.raises(ImageError) as caught:
        heif.decode(b"\0\0\0\x18ftypheic" + bytes(64), 30)
    assert caught.value.reason is FailureReason.CORRUPT
    assert heif.decode(make_photo(32, 32, fmt="HEIF"), 30).shape == (32, 32, 3)


def test_a_decoder_that_runs_out_of_time_is_killed():
    heif.decode(make_photo(32, 32, fmt="HEIF"), 30)
    before = decoder_processes()
    started = time.monotonic()
    with pytest.raises(ImageError, match=r"longer than 0\.3 s"):
        heif.decode(heif_grid_of_one_tile(320, 31, 31), 0.3)
    assert time.monotonic() - started < 5  # generous: the whole decode takes about 15 s here
    assert not decoder_processes() & before  # the one that was decoding is gone, not left running


def test_a_decoder_killed_while_idle_is_replaced():
    heif.decode(make_photo(32, 32, fmt="HEIF"), 30)
    for pid in decoder_processes():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert heif.decode(make_photo(48, 32, fmt="HEIF"), 30).shape == (32, 48, 3)
