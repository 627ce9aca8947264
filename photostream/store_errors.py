"""What the object store raises, and which of S3's refusals is which.

StoreError                 anything the store could not do
 ├── StoreUnavailable      retriable: connection refused, timeouts, 5xx, throttling
 ├── ObjectMissing         the key (or bucket, or multipart upload) does not exist
 └── ConditionFailed       a conditional write found the object other than the condition said
      └── AlreadyExists    a create-only write found the object already there
"""

from __future__ import annotations

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload"})
_PRECONDITION_CODES = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict"})
_THROTTLED_CODES = frozenset({"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "Throttling"})


class StoreError(Exception):
    """The object store could not do what was asked."""

    retriable = False


class StoreUnavailable(StoreError):
    """The store is down, slow or throttling; trying again later may work."""

    retriable = True


class ObjectMissing(StoreError):
    """The object (or bucket) does not exist."""


class ConditionFailed(StoreError):
    """A conditional write found the object other than the condition said (HTTP 412)."""


class AlreadyExists(ConditionFailed):
    """A create-only write found the object already there."""


def refusal(status: int, code: str, message: str = "") -> StoreError:
    """The error for S3's answer ``status`` with its error ``code`` (the status itself when it sent none)."""
    if code in _MISSING_CODES:
        return ObjectMissing(code)
    if code in _PRECONDITION_CODES or status == 412:
        return AlreadyExists(code)
    if status >= 500 or code in _THROTTLED_CODES:
        return StoreUnavailable(f"S3 answered {status} {code}")
    return StoreError(f"S3 refused: {status} {code} {message}".strip())
