import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streams.duplicates import MAX_DISTANCE_LIMIT, DuplicateIndex


def flip(value: int, bits: int, rng: random.Random) -> int:
    for position in rng.sample(range(64), bits):
        value ^= 1 << position
    return value


def hexed(value: int) -> str:
    return f"{value:016x}"


@pytest.fixture
def index():
    return DuplicateIndex({}, max_distance=6)


def test_first_photo_is_original(index):
    assert index.check_and_record("p", uuid.uuid4(), sha256="a", phash=hexed(1), sequence=1) is None


def test_same_bytes_are_an_exact_duplicate_of_the_earlier_photo(index):
    first, second = uuid.uuid4(), uuid.uuid4()
    index.check_and_record("p", first, sha256="s", phash=hexed(0xABC), sequence=1)
    match = index.check_and_record("p", second, sha256="s", phash=hexed(0xABC), sequence=2)
    assert (match.upload_id, match.kind, match.distance) == (first, "exact", 0)


@pytest.mark.parametrize("bits", range(7))
def test_hashes_within_the_distance_are_near_duplicates_wherever_the_bits_differ(bits):
    rng = random.Random(bits)
    for _ in range(50):
        index = DuplicateIndex({}, max_distance=6)
        base = rng.getrandbits(64)
        first = uuid.uuid4()
        index.check_and_record("p", first, sha256="a", phash=hexed(base), sequence=1)
        match = index.check_and_record("p", uuid.uuid4(), sha256="b", phash=hexed(flip(base, bits, rng)), sequence=2)
        assert match is not None
        assert (match.upload_id, match.kind, match.distance) == (first, "near", bits)


def test_hashes_beyond_the_distance_are_not_duplicates():
    rng = random.Random(7)
    for _ in range(50):
        index = DuplicateIndex({}, max_distance=6)
        base = rng.getrandbits(64)
        index.check_and_record("p", uuid.uuid4(), sha256="a", phash=hexed(base), sequence=1)
        far = flip(base, rng.randint(7, 40), rng)
        assert index.check_and_record("p", uuid.uuid4(), sha256="b", phash=hexed(far), sequence=2) is None


def test_photographers_never_match_each_other(index):
    index.check_and_record("alice", uuid.uuid4(), sha256="s", phash=hexed(5), sequence=1)
    assert index.check_and_record("bob", uuid.uuid4(), sha256="s", phash=hexed(5), sequence=2) is None


def test_the_closest_then_earliest_match_wins(index):
    far, near, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    index.check_and_record("p", far, sha256="1", phash=hexed(0b111), sequence=1)
    index.check_and_record("p", near, sha256="2", phash=hexed(0b1), sequence=2)
    index.check_and_record("p", later, sha256="3", phash=hexed(0b1), sequence=3)
    match = index.check_and_record("p", uuid.uuid4(), sha256="4", phash=hexed(0), sequence=4)
    assert (match.upload_id, match.distance) == (near, 1)


def test_a_replay_repeats_the_same_decision_and_adds_nothing():
    store: dict = {}
    index = DuplicateIndex(store, max_distance=6)
    first, copy, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    index.check_and_record("p", first, sha256="a", phash=hexed(0xF0), sequence=10)
    decided = index.check_and_record("p", copy, sha256="b", phash=hexed(0xF1), sequence=11)
    index.check_and_record("p", later, sha256="c", phash=hexed(0xF3), sequence=12)
    snapshot = {key: list(value) for key, value in store.items()}
    # After a crash the partition replays from offset 10: nothing is a duplicate of a later photo.
    assert index.check_and_record("p", first, sha256="a", phash=hexed(0xF0), sequence=10) is None
    assert index.check_and_record("p", copy, sha256="b", phash=hexed(0xF1), sequence=11) == decided
    assert store == snapshot


def test_distance_must_leave_blocks_of_a_few_bits():
    with pytest.raises(ValueError, match="max_distance"):
        DuplicateIndex({}, max_distance=MAX_DISTANCE_LIMIT + 1)


def test_zero_distance_finds_only_identical_hashes():
    index = DuplicateIndex({}, max_distance=0)
    first = uuid.uuid4()
    index.check_and_record("p", first, sha256="a", phash=hexed(42), sequence=1)
    assert index.check_and_record("p", uuid.uuid4(), sha256="b", phash=hexed(43), sequence=2) is None
    assert index.check_and_record("p", uuid.uuid4(), sha256="c", phash=hexed(42), sequence=3).upload_id == first


DELETED_AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_deleted_photo_matches_no_later_photo_and_leaves_its_buckets():
    store: dict = {}
    index = DuplicateIndex(store, max_distance=6)
    deleted, kept = uuid.uuid4(), uuid.uuid4()
    index.check_and_record("p", deleted, sha256="d", phash=hexed(0xF0F0), sequence=1)
    index.check_and_record("p", kept, sha256="k", phash=hexed(0xF0F1), sequence=2)
    index.forget("p", deleted, sha256="d", deleted_at=DELETED_AT)
    match = index.check_and_record("p", uuid.uuid4(), sha256="n", phash=hexed(0xF0F0), sequence=3)
    assert (match.upload_id, match.kind) == (kept, "near"), "the deleted photo was closer, but is forgotten"
    entries = [entry for key, value in store.items() if "/phash/" in key for entry in value]
    assert str(deleted) not in {entry[1] for entry in entries}
    assert "p/sha256/d" not in store


def test_an_upload_reads_as_deleted_up_to_its_delete_and_a_later_one_as_new(index):
    upload_id = uuid.uuid4()
    index.check_and_record("p", upload_id, sha256="s", phash=hexed(7), sequence=1)
    assert not index.deleted("p", upload_id, DELETED_AT)
    index.forget("p", upload_id, sha256="s", deleted_at=DELETED_AT)
    assert index.deleted("p", upload_id, DELETED_AT)
    assert index.deleted("p", upload_id, DELETED_AT - timedelta(hours=1))
    again = DELETED_AT + timedelta(milliseconds=1)
    assert not index.deleted("p", upload_id, again), "the same content uploaded again after the delete"
    assert not index.deleted("q", upload_id, DELETED_AT), "deletes are per photographer"
    assert index.check_and_record("p", upload_id, sha256="s", phash=hexed(7), sequence=9) is None


def test_forgetting_a_photo_the_index_never_saw_only_marks_it_deleted(index):
    upload_id = uuid.uuid4()
    index.forget("p", upload_id, sha256="s", deleted_at=DELETED_AT)
    assert index.deleted("p", upload_id, DELETED_AT)
