"""The order in which a follower gets an upload's stages: past first, each once, ``ready`` after ``processed``.

Pure logic (``producers.live._Order``), shared by the SSE and WebSocket endpoints. The races it
settles are real but rare on the stack: a live stage read by the feed while the follower's past is
still being looked up, and ``ImageReady`` read before ``ImageProcessed`` (two topics, no order
between them; ``photostream upload --wait`` then showed a completed file with no size).
"""

from __future__ import annotations

from datetime import UTC, datetime

from producers.ledger import UploadRecord
from producers.live import _REORDER_SECONDS, _Order
from producers.progress_feed import StageEvent

RECEIVED_AT = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
UPLOAD_ID = "67580e81-9dbd-518f-9e9f-a3fa0ac60390"


def _order() -> _Order:
    record = UploadRecord(
        upload_id=UPLOAD_ID, photographer_id="ana", filename="a.jpg", content_type="image/jpeg", bytes=1,
        sha256="0" * 64, original_key=f"originals/ana/{UPLOAD_ID}", received_at=RECEIVED_AT.isoformat(),
    )  # fmt: skip
    return _Order(record)


def _stage(name: str, received_at: datetime = RECEIVED_AT) -> StageEvent:
    return StageEvent(UPLOAD_ID, name, "2026-12-01T06:00:01+00:00", received_at=received_at)


def _names(stages: list[StageEvent]) -> list[str]:
    return [stage.stage for stage in stages]


def test_live_stages_that_come_before_the_past_is_out_follow_it_in_order():
    order = _order()
    assert order.arrive(_stage("processed"), 0.0) == []
    assert order.arrive(_stage("processing"), 0.0) == []
    assert _names(order.past([_stage("received")], 0.0)) == ["received", "processing", "processed"]


def test_a_ready_that_overtook_processed_waits_for_it():
    order = _order()
    order.past([_stage("received")], 0.0)
    assert order.arrive(_stage("ready"), 0.0) == []
    assert order.ready_due == _REORDER_SECONDS
    assert order.overdue(_REORDER_SECONDS / 2) == []
    assert _names(order.arrive(_stage("processed"), 0.1)) == ["processed", "ready"]
    assert order.done


def test_a_held_ready_goes_alone_once_processed_is_overdue():
    order = _order()
    order.past([_stage("received")], 0.0)
    order.arrive(_stage("ready"), 0.0)
    assert order.overdue(_REORDER_SECONDS / 2) == []
    assert _names(order.overdue(_REORDER_SECONDS)) == ["ready"]
    assert order.ready_due is None
    assert order.done
    assert order.arrive(_stage("processed"), 1.0) == []  # nothing after the final stage


def test_each_stage_goes_once_and_none_of_an_earlier_upload_of_the_photo():
    order = _order()
    earlier = datetime(2026, 11, 30, tzinfo=UTC)
    assert _names(order.past([_stage("received"), _stage("processing", earlier)], 0.0)) == ["received"]
    assert _names(order.arrive(_stage("processing"), 0.0)) == ["processing"]
    assert order.arrive(_stage("processing"), 0.0) == []


def test_a_ready_in_the_past_with_its_processed_goes_at_once():
    order = _order()
    past = order.past([_stage("received"), _stage("ready"), _stage("processed"), _stage("processing")], 0.0)
    assert _names(past) == ["received", "processing", "processed", "ready"]
    assert order.done
