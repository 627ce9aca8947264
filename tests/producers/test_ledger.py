from datetime import UTC, datetime, timedelta

from photostream.objectstore import MemoryObjectStore
from producers.fields import clean_filename
from producers.ledger import UploadLedger, UploadRecord, original_key, staging_key, upload_id_for


def test_upload_id_is_deterministic_per_photographer_and_content():
    a = upload_id_for("alice", "ab" * 32)
    assert a == upload_id_for("alice", "ab" * 32)
    assert a != upload_id_for("bob", "ab" * 32)
    assert a != upload_id_for("alice", "cd" * 32)


def test_original_key_is_built_from_ids_alone():
    upload_id = upload_id_for("alice", "ab" * 32)
    assert original_key("alice", upload_id) == f"originals/alice/{upload_id}"
    assert staging_key("alice", "f00d") == "incoming/alice/f00d"


def test_filenames_are_data_not_paths():
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\Users\\me\\IMG_1.JPG") == "IMG_1.JPG"
    assert clean_filename("bad\x00name\u202e.jpg") == "badname.jpg"
    assert clean_filename("") == "unnamed"
    assert clean_filename(None) == "unnamed"
    assert len(clean_filename("x" * 1000 + ".jpg")) == 255


def _record(upload_id: str, day: datetime) -> UploadRecord:
    return UploadRecord(upload_id, "alice", "a.jpg", "image/jpeg", 1, "ab" * 32, "k", day.isoformat())


async def test_the_quota_counts_other_gateways_listed_uploads_and_this_ones_in_flight_once_each():
    store = MemoryObjectStore()
    day = datetime(2026, 5, 1, 12, tzinfo=UTC)
    ledger = UploadLedger(store, quota_cache_seconds=0)  # every call lists the markers again
    other_gateway = UploadLedger(store)
    for upload_id in ("a", "b"):
        assert await other_gateway.reserve("alice", upload_id, day, quota=5)
        assert await other_gateway.save(_record(upload_id, day))
    assert await ledger.accepted_today("alice", day) == 2

    assert await ledger.reserve("alice", "c", day, quota=5)
    assert await ledger.reserve("alice", "c", day, quota=5), "the same id takes one slot"
    assert await ledger.reserve("alice", "a", day, quota=5), "a listed id holds its slot already"
    assert await ledger.accepted_today("alice", day) == 3
    assert await ledger.reserve("alice", "d", day, quota=5)
    assert await ledger.reserve("alice", "e", day, quota=5)
    assert not await ledger.reserve("alice", "f", day, quota=5)

    ledger.release("alice", "e", day)  # not saved: the slot is free again
    assert await ledger.accepted_today("alice", day) == 4
    assert await ledger.save(_record("c", day))
    ledger.release("alice", "c", day)  # saved: it counts, released or not
    # "c" is listed now as well as taken here: still one slot.
    assert await ledger.accepted_today("alice", day) == 4
    assert await ledger.accepted_today("bob", day) == 0
    assert await ledger.accepted_today("alice", day + timedelta(days=1)) == 0


async def test_the_count_stays_right_with_thousands_of_uploads_in_flight_on_one_day():
    ledger = UploadLedger(MemoryObjectStore(), quota_cache_seconds=3600)
    day = datetime(2026, 5, 1, 12, tzinfo=UTC)
    for number in range(20_000):
        assert await ledger.reserve("alice", f"id-{number}", day, quota=100_000)
    assert await ledger.accepted_today("alice", day) == 20_000
    for number in range(0, 20_000, 2):
        ledger.release("alice", f"id-{number}", day)
    assert await ledger.accepted_today("alice", day) == 10_000
