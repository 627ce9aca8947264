"""Where faust-streaming 0.15.3 (pinned) loses messages on a takeover, and the fixes this app uses.

Verified by killing one of two workers mid-stream (``tests/streams/test_worker_failover.py``),
which lost uploads before these fixes:

1. **DROPPED MESSAGE.** The consumer drops any message whose offset is below the last one it
   handed to a stream. After a rebalance with table recovery, that mark can outlive the seek
   back to the committed offset, so re-fetched messages are dropped for good. Replays are
   harmless here (every effect is idempotent), so the mark is never kept.
2. **Queues cleared after the seek.** When tables recover, the stream partitions are resumed
   and seeked to their committed offsets while the flow is already running, and only then is
   ``flow_control.resume()`` called, which empties every stream queue. Messages fetched after
   the seek are thrown away and the fetch position has moved past them: lost until the next
   rebalance. Queues are already emptied when partitions are revoked, so clearing again is
   only needed when the flow really was suspended.
3. **Changelog writes are fire-and-forget.** A table write's changelog message is buffered
   and only flushed best effort before a commit. ``TrackedTable`` lets the code that made a
   write await it before acknowledging the input that caused it.
"""

from __future__ import annotations

import contextvars
from typing import Any

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

# Changelog sends made by the decision running in this context (see ``TrackedTable``).
changelog_sends: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("changelog_sends", default=None)


class TrackedTable(faust.Table):
    """A table whose changelog sends are collected in ``changelog_sends`` when it is set."""

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        """Send the changelog message, and remember its future for whoever set ``changelog_sends``."""
        future = super().send_changelog(*args, **kwargs)
        sends = changelog_sends.get()
        if sends is not None:
            sends.append(future)
        return future


class _NeverRead(dict):  # type: ignore[type-arg]
    """A stand-in for the consumer's last-read offsets that never remembers one (fix 1)."""

    def __getitem__(self, key: Any) -> None:
        return None

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


class _ResumeKeepsQueues(FlowControlEvent):
    """Flow control that only empties queues when resuming a suspended flow (fix 2)."""

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class App(faust.App):
    """``faust.App`` with fixes 1 and 2 applied."""

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        consumer._read_offset = _NeverRead()  # type: ignore[attr-defined]  # on Consumer, not ConsumerT
        return consumer

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """Flow control of streams that keeps what was fetched after a seek."""
        return _ResumeKeepsQueues(loop=self.loop)
