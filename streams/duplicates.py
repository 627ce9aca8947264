"""Per-photographer duplicate detection: exact (same sha256) and near (perceptual hash close by).

Pure logic over a key-value store, so the Faust agent backs it with a table (state that survives
restarts and follows partitions) and tests back it with a dict.

Near-duplicates use multi-index hashing: a 64-bit hash is cut into ``max_distance + 1`` blocks.
Two hashes within ``max_distance`` bits of each other agree exactly on at least one block (by
pigeonhole), so each block value is a key whose bucket lists the hashes that had it. A lookup
reads ``max_distance + 1`` buckets instead of scanning every earlier photo.

Deletes: a deleted photo is forgotten (``forget``): it matches no later photo, and the index
remembers when it was deleted, so the worker skips that upload's event if it comes after the
delete, while the same content uploaded again later (same id, later ``received_at``) is a new photo.

Order: every record carries a sequence (the event's partition offset; one photographer's events
share one partition). A photo is only ever the duplicate of one with a lower sequence, and a
replayed event finds itself and skips it, so decisions follow upload order and a replay after a
crash repeats the same decision.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

log = logging.getLogger(__name__)

HASH_BITS = 64
MAX_DISTANCE_LIMIT = 15  # blocks of at least 4 bits; beyond it buckets stop narrowing anything

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DuplicateKind = Literal["exact", "near"]


Store = MutableMapping[str, Any]
"""Where entries live: a Faust table in the worker, a dict in tests."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The earlier photo a new one duplicates.

    Attributes:
        upload_id: The earlier photo's id.
        kind: ``exact`` for identical bytes, ``near`` for a close perceptual hash.
        distance: Hamming distance between the perceptual hashes (0 for exact).
    """

    upload_id: uuid.UUID
    kind: DuplicateKind
    distance: int


class DuplicateIndex:
    """Finds and records each photographer's earlier photos by content."""

    def __init__(self, store: Store, *, max_distance: int) -> None:
        """Create the index.

        Args:
            store: Where entries live. Keys are strings; values are lists of plain JSON values.
            max_distance: Largest Hamming distance (bits of 64) that still counts as a near-duplicate.
                Changing it changes the bucket layout, so it must stay fixed for a store's lifetime.
        """
        if not 0 <= max_distance <= MAX_DISTANCE_LIMIT:
            raise ValueError(f"max_distance must be 0-{MAX_DISTANCE_LIMIT}, got {max_distance}")
        self._store = store
        self._max_distance = max_distance
        self._blocks = _blocks(max_distance + 1)

    def check_and_record(
        self, photographer_id: str, upload_id: uuid.UUID, *, sha256: str, phash: str, sequence: int
    ) -> Duplicate | None:
        """Return the earlier photo this one duplicates, if any, and remember this one.

        Args:
            photographer_id: Whose photo it is; photographers never match each other.
            upload_id: The photo's id.
            sha256: Hex digest of the original's bytes.
            phash: 16 hex digits of the 64-bit perceptual hash.
            sequence: The photo's position in its photographer's upload order.

        Returns:
            The earliest exact duplicate, else the closest (then earliest) near-duplicate, else None.
        """
        own_id = str(upload_id)
        value = int(phash, 16)
        exact_key = f"{photographer_id}/sha256/{sha256}"
        exact = self._store.get(exact_key)
        match: Duplicate | None = None
        if exact is not None and exact[0] != own_id and exact[1] < sequence:
            match = Duplicate(uuid.UUID(exact[0]), "exact", 0)
        bucket_keys = list(self._bucket_keys(photographer_id, value))
        if match is None:
            match = self._nearest(bucket_keys, own_id, value, sequence)
        # What the decision saw, so a surprising one can be traced to the table's state at that moment.
        log.info(
            "duplicate check of %s at sequence %d: %d earlier entries in its %d buckets -> %s",
            own_id,
            sequence,
            sum(1 for key in bucket_keys for entry in self._store.get(key) or [] if entry[2] < sequence),
            len(bucket_keys),
            f"{match.kind} of {match.upload_id} (distance {match.distance})" if match else "none",
        )
        if exact is None:
            self._store[exact_key] = [own_id, sequence]
        for key in bucket_keys:
            bucket = self._store.get(key) or []
            if not any(entry[1] == own_id for entry in bucket):
                self._store[key] = [*bucket, [phash, own_id, sequence]]
        phash_key = self._phash_key(photographer_id, own_id)
        if self._store.get(phash_key) != [phash]:
            self._store[phash_key] = [phash]
        return match

    def forget(self, photographer_id: str, upload_id: uuid.UUID, *, sha256: str, deleted_at: datetime) -> None:
        """Forget a deleted photo: no later photo matches it, and its upload reads as deleted until then."""
        own_id = str(upload_id)
        self._store[self._deleted_key(photographer_id, own_id)] = [_millis(deleted_at)]
        exact_key = f"{photographer_id}/sha256/{sha256}"
        exact = self._store.get(exact_key)
        if exact is not None and exact[0] == own_id:
            del self._store[exact_key]
        phash_key = self._phash_key(photographer_id, own_id)
        recorded = self._store.get(phash_key)
        if recorded is None:
            return
        for key in self._bucket_keys(photographer_id, int(recorded[0], 16)):
            bucket = self._store.get(key) or []
            kept = [entry for entry in bucket if entry[1] != own_id]
            if len(kept) != len(bucket):
                self._store[key] = kept
        del self._store[phash_key]

    def deleted(self, photographer_id: str, upload_id: uuid.UUID, received_at: datetime) -> bool:
        """Whether the upload received at ``received_at`` was deleted since (a re-upload after a delete was not)."""
        marker = self._store.get(self._deleted_key(photographer_id, str(upload_id)))
        return marker is not None and _millis(received_at) <= marker[0]

    @staticmethod
    def _deleted_key(photographer_id: str, upload_id: str) -> str:
        return f"{photographer_id}/deleted/{upload_id}"

    @staticmethod
    def _phash_key(photographer_id: str, upload_id: str) -> str:
        # Which buckets a photo is in, so a delete can take it out of them.
        return f"{photographer_id}/phash-of/{upload_id}"

    def _nearest(self, bucket_keys: list[str], own_id: str, value: int, sequence: int) -> Duplicate | None:
        best: tuple[int, int, str] | None = None
        for key in bucket_keys:
            for other_hash, other_id, other_sequence in self._store.get(key) or []:
                if other_id == own_id or other_sequence >= sequence:
                    continue
                distance = (int(other_hash, 16) ^ value).bit_count()
                candidate = (distance, other_sequence, other_id)
                if distance <= self._max_distance and (best is None or candidate < best):
                    best = candidate
        return None if best is None else Duplicate(uuid.UUID(best[2]), "near", best[0])

    def _bucket_keys(self, photographer_id: str, value: int) -> Iterator[str]:
        for index, (shift, mask) in enumerate(self._blocks):
            yield f"{photographer_id}/phash/{self._max_distance}/{index}/{(value >> shift) & mask:x}"


def _millis(moment: datetime) -> int:
    # Events carry milliseconds (Avro timestamp-millis), so compare at that precision, exactly.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _blocks(count: int) -> list[tuple[int, int]]:
    """Split 64 bits into ``count`` contiguous blocks as (shift, mask), sizes differing by at most one."""
    blocks = []
    shift = 0
    for index in range(count):
        size = HASH_BITS // count + (1 if index < HASH_BITS % count else 0)
        blocks.append((shift, (1 << size) - 1))
        shift += size
    return blocks
