"""An original on its way in: hashed as it arrives, in memory up to the threshold, on disk beyond."""

from __future__ import annotations

import hashlib
import os

import pytest

from streams.spill import SPILL_PREFIX, Discarded, SpooledOriginal


def chunks(data: bytes, size: int = 1000):
    return [data[start : start + size] for start in range(0, len(data), size)]


def spooled(data: bytes, threshold: int, directory) -> SpooledOriginal:
    original = SpooledOriginal(threshold, directory)
    for chunk in chunks(data):
        original.write(chunk)
    return original


def test_a_small_original_stays_in_memory(tmp_path):
    data = os.urandom(5000)
    original = spooled(data, 8000, tmp_path)
    assert original.source() == data
    assert original.path is None
    assert list(tmp_path.iterdir()) == []
    assert (original.size, original.sha256()) == (5000, hashlib.sha256(data).hexdigest())


def test_an_original_of_exactly_the_threshold_stays_in_memory(tmp_path):
    data = os.urandom(8000)
    assert spooled(data, 8000, tmp_path).source() == data
    assert list(tmp_path.iterdir()) == []


def test_a_large_original_goes_to_a_temp_file_in_the_directory(tmp_path):
    data = os.urandom(20_000)
    original = spooled(data, 8000, tmp_path)
    source = original.source()
    assert source == original.path
    assert source.parent == tmp_path
    assert source.name.startswith(SPILL_PREFIX)
    assert source.read_bytes() == data
    assert (original.size, original.sha256()) == (20_000, hashlib.sha256(data).hexdigest())


def test_discard_removes_the_temp_file_and_is_idempotent(tmp_path):
    original = spooled(os.urandom(20_000), 8000, tmp_path)
    path = original.source()
    original.discard()
    original.discard()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_leaving_the_with_block_discards_even_on_an_error(tmp_path):
    def process(original: SpooledOriginal) -> None:
        with original:
            assert original.path is not None
            raise RuntimeError("processing failed")

    with pytest.raises(RuntimeError):
        process(spooled(os.urandom(20_000), 8000, tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_write_after_discard_stops_the_download(tmp_path):
    # A download still running on a thread for a cancelled upload: its next chunk fails, no file is left.
    original = spooled(os.urandom(20_000), 8000, tmp_path)
    original.discard()
    with pytest.raises(Discarded):
        original.write(b"more")
    with pytest.raises(Discarded):
        original.source()
    assert list(tmp_path.iterdir()) == []


def test_no_write_after_the_original_is_complete(tmp_path):
    original = spooled(os.urandom(20_000), 8000, tmp_path)
    original.source()
    with pytest.raises(RuntimeError, match="complete"):
        original.write(b"more")
    original.discard()


def test_the_directory_is_created_when_needed(tmp_path):
    directory = tmp_path / "worker" / "originals"
    with spooled(os.urandom(20_000), 8000, directory) as original:
        assert original.source().parent == directory
    assert list(directory.iterdir()) == []
