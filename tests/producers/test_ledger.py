from producers.fields import clean_filename
from producers.ledger import original_key, staging_key, upload_id_for


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
