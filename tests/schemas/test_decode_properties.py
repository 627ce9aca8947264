"""Property-based twin of test_decode_errors.py, run when hypothesis is installed.

The seeded loops in test_decode_errors.py stay as the always-on baseline; hypothesis adds
shrinking and wider inputs. No example database is written (``database=None``); hypothesis still
keeps a small cache in ``.hypothesis/``, which it git-ignores itself.
"""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("hypothesis")

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import DecodeError
from schemas.serde import EventSerde
from schemas.topics import EVENT_BY_TOPIC
from tests.schemas.samples import ALL_EVENTS, topic_of

SERDES = {"single-object": EventSerde(), "registry": EventSerde(f"mock://schemas-props-{uuid.uuid4().hex[:12]}")}
ENCODED = [(fmt, topic_of(e), SERDES[fmt].encode(e, topic_of(e))) for fmt in sorted(SERDES) for e in ALL_EVENTS]
PROPS = settings(database=None, deadline=None, max_examples=300)

partitions = st.none() | st.integers(min_value=0, max_value=10_000)
offsets = st.none() | st.integers(min_value=0, max_value=2**63 - 1)


def _check_message(error: DecodeError, topic: str, partition: int | None, offset: int | None) -> None:
    assert f"topic={topic} partition={partition} offset={offset}" in str(error)


@PROPS
@given(
    data=st.binary(max_size=400),
    topic=st.sampled_from(sorted(EVENT_BY_TOPIC)),
    fmt=st.sampled_from(sorted(SERDES)),
    partition=partitions,
    offset=offsets,
)
def test_arbitrary_bytes_give_decode_error(
    data: bytes, topic: str, fmt: str, partition: int | None, offset: int | None
) -> None:
    with pytest.raises(DecodeError) as caught:
        SERDES[fmt].decode(data, topic, partition, offset)
    _check_message(caught.value, topic, partition, offset)


@PROPS
@given(case=st.sampled_from(ENCODED), cut=st.integers(min_value=0), partition=partitions, offset=offsets)
def test_truncated_messages_give_decode_error(
    case: tuple[str, str, bytes], cut: int, partition: int | None, offset: int | None
) -> None:
    fmt, topic, data = case
    with pytest.raises(DecodeError) as caught:
        SERDES[fmt].decode(data[: cut % len(data)], topic, partition, offset)
    _check_message(caught.value, topic, partition, offset)


@PROPS
@given(case=st.sampled_from(ENCODED), edits=st.lists(st.tuples(st.integers(0), st.integers(0, 255)), min_size=1))
def test_mutated_messages_decode_or_give_decode_error(
    case: tuple[str, str, bytes], edits: list[tuple[int, int]]
) -> None:
    fmt, topic, data = case
    mutated = bytearray(data)
    for position, value in edits:
        mutated[position % len(mutated)] = value
    outcome: object
    try:
        outcome = SERDES[fmt].decode(bytes(mutated), topic, 1, 2)
    except DecodeError as error:
        outcome = error
    if isinstance(outcome, DecodeError):
        _check_message(outcome, topic, 1, 2)
    else:
        assert type(outcome) is EVENT_BY_TOPIC[topic]
