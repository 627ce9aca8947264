"""The ordering window on its own: plain asyncio stages the tests hold, release and fail at will."""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass

import pytest

from streams.ordered import OrderedWindow


@dataclass(frozen=True)
class Item:
    """One event: its partition, its offset, and which delivery of that offset it is (replays)."""

    partition: str
    offset: int
    attempt: int = 1


def items(partition: str, *offsets: int, attempt: int = 1) -> list[Item]:
    return [Item(partition, offset, attempt) for offset in offsets]


class Stages:
    """Stages that record what ran; a test holds a stage of an item until it releases it, or fails it."""

    def __init__(self, size: int = 8, *, jitter: random.Random | None = None) -> None:
        self.log: list[tuple[str, Item]] = []
        self.fatal: list[BaseException] = []
        self._gates: dict[tuple[str, Item], asyncio.Event] = {}
        self._failures: dict[tuple[str, Item], BaseException] = {}
        self._jitter = jitter
        self.window: OrderedWindow[Item, str] = OrderedWindow(
            size, prepare=self.prepare, decide=self.decide, ack=self.ack, fatal=self.fatal.append
        )

    def hold(self, stage: str, *held: Item) -> None:
        for item in held:
            self._gates[(stage, item)] = asyncio.Event()

    def release(self, stage: str, *held: Item) -> None:
        for item in held:
            self._gates[(stage, item)].set()

    def fail(self, stage: str, item: Item, error: BaseException) -> None:
        self._failures[(stage, item)] = error

    async def submit(self, *submitted: Item) -> None:
        for item in submitted:
            await self.window.submit(item.partition, item)

    def seen(self, stage: str, partition: str) -> list[int]:
        """Offsets of ``partition`` that passed ``stage``, in the order they did."""
        return [item.offset for done, item in self.log if done == stage and item.partition == partition]

    async def _pass(self, stage: str, item: Item) -> None:
        if self._jitter is not None:
            await asyncio.sleep(self._jitter.random() / 1000)
        gate = self._gates.get((stage, item))
        if gate is not None:
            await gate.wait()
        failure = self._failures.get((stage, item))
        if failure is not None:
            raise failure
        self.log.append((stage, item))

    async def prepare(self, item: Item) -> str:
        await self._pass("prepared", item)
        return f"{item.partition}{item.offset}"

    async def decide(self, item: Item, prepared: str) -> list[Awaitable[object]]:
        assert prepared == f"{item.partition}{item.offset}"
        await self._pass("decided", item)
        # Like a producer's send: the delivery is under way when decide returns.
        return [asyncio.ensure_future(self._pass("delivered", item))]

    async def ack(self, item: Item) -> None:
        await self._pass("acked", item)


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_items_prepared_out_of_order_decide_and_ack_in_offset_order():
    stages = Stages()
    a = items("A", 0, 1, 2, 3)
    stages.hold("prepared", *a)
    await stages.submit(*a)
    for item in reversed(a[1:]):
        stages.release("prepared", item)
        await settle()
        assert stages.seen("decided", "A") == []
    stages.release("prepared", a[0])
    await stages.window.wait_idle()

    assert stages.seen("prepared", "A") == [3, 2, 1, 0]
    assert stages.seen("decided", "A") == [0, 1, 2, 3]
    assert stages.seen("acked", "A") == [0, 1, 2, 3]
    assert stages.fatal == []


async def test_the_next_item_decides_before_this_one_is_delivered_but_acks_after_it():
    stages = Stages()
    a = items("A", 0, 1)
    stages.hold("delivered", a[0])
    await stages.submit(*a)
    await settle()
    assert stages.seen("decided", "A") == [0, 1]
    assert stages.seen("delivered", "A") == [1]
    assert stages.seen("acked", "A") == []

    stages.release("delivered", a[0])
    await stages.window.wait_idle()
    assert stages.seen("acked", "A") == [0, 1]
    assert stages.log.index(("acked", a[0])) > stages.log.index(("delivered", a[0]))


async def test_a_failing_item_stops_its_partition_and_is_fatal_but_other_partitions_go_on():
    stages = Stages()
    a, b = items("A", 0, 1, 2, 3), items("B", 0, 1)
    refused = RuntimeError("Kafka refused the send")
    stages.fail("decided", a[1], refused)
    await stages.submit(a[0], b[0], a[1], a[2], b[1], a[3])
    await stages.window.wait_idle()

    assert stages.seen("acked", "A") == [0]
    assert stages.seen("decided", "A") == [0]  # the later items never decide
    assert stages.seen("prepared", "A") == [0, 1, 2, 3]
    assert stages.fatal == [refused, refused, refused]  # A1, then A2 and A3 when their turn came
    assert stages.seen("acked", "B") == [0, 1]


async def test_a_failed_delivery_lets_later_items_decide_but_none_of_them_is_acked():
    stages = Stages()
    a = items("A", 0, 1, 2)
    lost = ConnectionError("delivery failed")
    stages.fail("delivered", a[1], lost)
    await stages.submit(*a)
    await stages.window.wait_idle()

    assert stages.seen("decided", "A") == [0, 1, 2]
    assert stages.seen("acked", "A") == [0]
    assert stages.fatal == [lost, lost]


async def test_a_cancelled_item_cancels_the_rest_of_its_partition_without_a_fatal_error():
    stages = Stages()
    a, b = items("A", 0, 1, 2), items("B", 0)
    stages.fail("prepared", a[1], asyncio.CancelledError())
    await stages.submit(*a, *b)
    await stages.window.wait_idle()

    assert stages.seen("acked", "A") == [0]
    assert stages.seen("decided", "A") == [0]
    assert stages.seen("acked", "B") == [0]
    assert stages.fatal == []


async def test_a_partition_revoked_mid_window_and_assigned_again_replays_after_its_old_items():
    stages = Stages()
    old, other = items("A", 0, 1, 2), items("B", 0, 1, 2)
    stages.hold("prepared", *old)
    await stages.submit(*old, *other)
    await settle()
    # A's items are stuck in flight; B's partition does not wait for them.
    assert stages.seen("acked", "B") == [0, 1, 2]
    assert stages.window.in_flight == 3

    # A is revoked, then assigned back and replayed from its last commit (offset 1) while its
    # old items are still in flight: the replays are ready first, yet wait for the old ones.
    replayed = items("A", 1, 2, attempt=2)
    await stages.submit(*replayed)
    await settle()
    assert stages.seen("prepared", "A") == [1, 2]
    assert stages.seen("decided", "A") == []
    stages.release("prepared", *old)
    await stages.window.wait_idle()

    acked = [item for stage, item in stages.log if stage == "acked" and item.partition == "A"]
    assert acked == [*old, *replayed]
    assert stages.seen("decided", "A") == [0, 1, 2, 1, 2]
    assert stages.fatal == []


async def test_submit_waits_for_room_when_the_window_is_full():
    stages = Stages(size=2)
    a0, b0, c0 = Item("A", 0), Item("B", 0), Item("C", 0)
    stages.hold("prepared", a0, b0)
    await stages.submit(a0, b0)
    third = asyncio.create_task(stages.submit(c0))
    await settle()
    assert not third.done()
    assert stages.window.in_flight == 2
    assert stages.seen("prepared", "C") == []

    stages.release("prepared", b0)
    await settle()
    assert third.done()
    assert stages.seen("acked", "C") == [0]
    assert stages.window.in_flight == 1
    stages.release("prepared", a0)
    await stages.window.wait_idle()
    assert stages.window.in_flight == 0


async def test_a_failed_item_gives_its_place_in_the_window_back():
    stages = Stages(size=1)
    a0, b0 = Item("A", 0), Item("B", 0)
    stages.fail("prepared", a0, RuntimeError("broken"))
    await asyncio.wait_for(stages.submit(a0, b0), timeout=1)
    await stages.window.wait_idle()
    assert stages.seen("acked", "B") == [0]


@pytest.mark.parametrize("seed", range(5))
async def test_acks_never_skip_an_offset(seed):
    stages = Stages(size=5, jitter=random.Random(seed))
    partitions = {name: items(name, *range(30)) for name in "ABC"}
    arrival = random.Random(seed + 100)
    queues = {name: list(values) for name, values in partitions.items()}
    while any(queues.values()):
        name = arrival.choice([name for name, queue in queues.items() if queue])
        await stages.submit(queues[name].pop(0))
    await stages.window.wait_idle()

    assert stages.fatal == []
    for name in partitions:
        assert stages.seen("decided", name) == list(range(30))
        assert stages.seen("acked", name) == list(range(30))
    position = {entry: index for index, entry in enumerate(stages.log)}
    for item in (item for values in partitions.values() for item in values):
        assert position[("acked", item)] > position[("delivered", item)]
    assert stages.window.in_flight == 0


async def test_each_item_runs_in_the_context_it_was_submitted_from():
    # faust's current_event() is a context variable: a table write must see its own event.
    current: contextvars.ContextVar[Item | None] = contextvars.ContextVar("current", default=None)
    seen: dict[Item, list[Item | None]] = defaultdict(list)

    async def record(item: Item, *_: object) -> list[Awaitable[object]]:
        await asyncio.sleep(0)
        seen[item].append(current.get())
        return []

    window: OrderedWindow[Item, list[Awaitable[object]]] = OrderedWindow(
        4, prepare=record, decide=record, ack=record, fatal=pytest.fail
    )
    for item in items("A", 0, 1, 2):
        current.set(item)
        await window.submit(item.partition, item)
    await window.wait_idle()
    assert seen == {item: [item, item, item] for item in items("A", 0, 1, 2)}
