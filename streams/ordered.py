"""The ordering window: many items in flight, their decisions and acknowledgements in offset order.

Plain asyncio, no Kafka and no faust: ``streams.app`` feeds it each partition's events in offset
order and supplies three stages; this module decides when each stage may run.

::

    prepare(item)            as soon as the window has room: up to ``size`` items at once, across
                             partitions, finishing in any order
    decide(item, prepared)   in offset order per partition, once the previous item has decided;
                             returns the deliveries it started (sends, changelog writes)
    ack(item)                in offset order per partition, once this item's deliveries are done
                             and the previous item has been acknowledged

So an offset is acknowledged only after everything it caused is delivered and after every earlier
offset of its partition was acknowledged: an ack never skips an offset. The next item may decide
before this one's deliveries complete (the producer keeps per-partition order); only its ack waits.

Failures. A stage that raises is not the input's fault (bad input is a result of ``prepare``, not
an error): the item is not acknowledged, and neither is any later item of its partition, which
fails with the same error once its turn to decide comes. ``fatal`` is called with the error of
every item that fails; the worker's ``fatal`` stops the process at the first, so another worker
replays the partition from its last commit. A cancelled item (the worker stopping) cancels the
partition's later items the same way, without calling ``fatal``.

A partition revoked mid-window needs nothing here: faust waits for every event it handed out to be
acknowledged before it gives a partition up, so the partition's items run to their end. If it is
assigned again, its replayed items chain after its old last item.

Each item runs in a task started by ``submit``, which copies the caller's context: faust's
``current_event()`` there is the item's own event, so its table writes go to its own changelog
partition.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
PreparedT = TypeVar("PreparedT")


class OrderedWindow(Generic[ItemT, PreparedT]):
    """Runs up to ``size`` items at once; decisions and acks in offset order per partition."""

    def __init__(
        self,
        size: int,
        *,
        prepare: Callable[[ItemT], Awaitable[PreparedT]],
        decide: Callable[[ItemT, PreparedT], Awaitable[Sequence[Awaitable[object]]]],
        ack: Callable[[ItemT], Awaitable[object]],
        fatal: Callable[[BaseException], None],
    ) -> None:
        """Create the window; nothing runs before ``submit``.

        Args:
            size: Items in flight at once, across partitions (back-pressure on ``submit``).
            prepare: The work that may run in any order.
            decide: The work that must run in offset order; returns the deliveries to await.
            ack: Acknowledges an item, after its deliveries.
            fatal: Called with the error of an item that failed (see the module docstring).
        """
        self._slots = asyncio.Semaphore(size)
        self._prepare = prepare
        self._decide = decide
        self._ack = ack
        self._fatal = fatal
        self._tails: dict[Hashable, _Step] = {}
        self._running: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Items started and not finished yet."""
        return len(self._running)

    async def submit(self, partition: Hashable, item: ItemT) -> None:
        """Start ``item`` once the window has room, after every item submitted before on ``partition``.

        Items of one partition must be submitted in offset order. Returns once the item's task
        started (in a copy of the caller's context), not when it finished.
        """
        await self._slots.acquire()
        step = _Step.create()
        previous, self._tails[partition] = self._tails.get(partition), step
        task = asyncio.create_task(self._run(item, step, previous))
        self._running.add(task)
        task.add_done_callback(functools.partial(self._finish, step=step))

    async def wait_idle(self) -> None:
        """Return once every item submitted so far has finished, whatever its outcome."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def _run(self, item: ItemT, step: _Step, previous: _Step | None) -> None:
        prepared = await self._prepare(item)
        if previous is not None:
            await previous.sent
        deliveries = await self._decide(item, prepared)
        # The producer keeps per-partition order, so the next item may send before these are
        # delivered; only its acknowledgement waits for this one's.
        step.sent.set_result(None)
        await asyncio.gather(*deliveries)
        if previous is not None:
            await previous.acked
        await self._ack(item)

    def _finish(self, task: asyncio.Task[None], *, step: _Step) -> None:
        self._running.discard(task)
        self._slots.release()
        if task.cancelled():
            step.cancel()
            return
        error = task.exception()
        if error is None:
            step.acked.set_result(None)
            return
        step.fail(error)
        self._fatal(error)


@dataclass(frozen=True, slots=True)
class _Step:
    """One item's progress, which the next item of its partition waits on."""

    sent: asyncio.Future[None]
    acked: asyncio.Future[None]

    @classmethod
    def create(cls) -> _Step:
        loop = asyncio.get_running_loop()
        return cls(sent=loop.create_future(), acked=loop.create_future())

    def fail(self, error: BaseException) -> None:
        for future in (self.sent, self.acked):
            if not future.done():
                future.set_exception(error)
                future.exception()  # marks it retrieved: the next item re-raises it, this one reports it

    def cancel(self) -> None:
        for future in (self.sent, self.acked):
            future.cancel()
