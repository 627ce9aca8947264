"""The serde's error tree.

Every failure of the contract layer is a ``SerdeError``; callers catch the leaf they can act on::

    SerdeError                  base; ``retriable`` says whether trying again may help
    ├── SchemaLoadError         the shipped .avsc files are invalid or clash (a bug: fail at start-up)
    ├── EncodeError             an event cannot be written (wrong class for the topic, value out of range)
    ├── DecodeError             bytes cannot become an event: bad magic byte(s), unknown fingerprint or
    │                           schema id, corrupt or truncated body, record of another topic.
    │                           Bad input: turn it into a ProcessingFailed and move on.
    └── RegistryError           the schema registry failed or is unreachable; ``retriable`` when transient

``DecodeError`` is the only exception ``EventSerde.decode`` raises for bad bytes, whatever the wire
format; its message names the topic, partition and offset so a dead letter can be found again.
"""

from __future__ import annotations


class SerdeError(Exception):
    """Base of every error raised by the ``schemas`` package.

    Attributes:
        retriable: True when the same call may succeed later (a transient outage), False when the
            input itself is at fault and retrying would fail the same way.
    """

    retriable: bool = False


class SchemaLoadError(SerdeError):
    """The shipped schemas cannot be loaded: invalid Avro, or two files define the same name."""


class EncodeError(SerdeError):
    """An event cannot be encoded for a topic."""


class DecodeError(SerdeError):
    """Bytes read from a topic cannot be decoded into an event.

    Args:
        reason: What is wrong with the bytes.
        topic: Topic the bytes came from.
        partition: Partition, when known.
        offset: Offset, when known.

    Attributes:
        reason: What is wrong with the bytes.
        topic: Topic the bytes came from.
        partition: Partition, or None.
        offset: Offset, or None.
    """

    def __init__(self, reason: str, topic: str, partition: int | None = None, offset: int | None = None) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(f"cannot decode message at topic={topic} partition={partition} offset={offset}: {reason}")


class RegistryError(SerdeError):
    """The schema registry refused a request or could not be reached.

    Args:
        message: What failed.
        retriable: Whether retrying may help (server errors, timeouts, connection failures).
    """

    def __init__(self, message: str, *, retriable: bool) -> None:
        self.retriable = retriable
        super().__init__(message)
