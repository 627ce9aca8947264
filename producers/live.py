"""Following uploads as they go: Server-Sent Events for one upload, a WebSocket for many.

    GET /v1/uploads/{upload_id}/events   text/event-stream: one event per stage, ends after ready, failed or deleted
    GET /v1/ws                           send {"subscribe": [ids]} (or "unsubscribe"); stages come as JSON

Both send the owner the stages already passed first (from the ledger and the status), then each
new one as the gateway's progress feed reads it from Kafka (``producers.progress_feed``), each
stage once, in order. A follower is registered with the feed before the past is read, so no
stage falls between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from aiohttp_sse import sse_response

from photostream.deletions import read_tombstone
from photostream.warehouse import WarehouseError
from producers import problems
from producers.ledger import UploadRecord
from producers.progress_feed import FINAL_STAGES, STAGES, ProgressFeed, StageEvent, metadata_summary

if TYPE_CHECKING:
    from producers.gateway import Gateway

log = logging.getLogger(__name__)

# When ``ready`` comes before ``processed`` (two topics, no order between them), how long to wait for it.
_REORDER_SECONDS = 0.25
# After this long without a stage, a follower asks the status as well (a stage a restarted gateway missed).
_RECHECK_SECONDS = 10.0


class LiveProgress:
    """The SSE and WebSocket endpoints, bound to the gateway and its progress feed."""

    def __init__(self, gateway: Gateway, feed: ProgressFeed) -> None:
        """Use ``gateway``'s authentication, ledger and status, and ``feed`` for what comes next."""
        self.gateway = gateway
        self.feed = feed

    def add_routes(self, app: web.Application) -> None:
        """Serve the endpoints on ``app``; the feed runs while the app does."""
        app.router.add_get("/v1/uploads/{upload_id}/events", self.events)
        app.router.add_get("/v1/ws", self.websocket)

        async def run_feed(_: web.Application) -> Any:
            await self.feed.start()
            yield
            await self.feed.stop()

        app.cleanup_ctx.append(run_feed)

    async def _owned(self, photographer_id: str, raw_id: str) -> UploadRecord | None:
        try:
            upload_id = str(uuid.UUID(str(raw_id)))
        except ValueError:
            return None
        record = await self.gateway.services.ledger.find(upload_id)
        return record if record is not None and record.photographer_id == photographer_id else None

    async def _past(self, record: UploadRecord) -> list[StageEvent]:
        """The stages the upload has passed: from the ledger, the status, and what the feed read lately.

        The status is written a moment after each event; the feed's recent stages cover that moment.
        """
        known = {stage.stage: stage for stage in await self._from_status(record)}
        received_at = record.received
        for stage in self.feed.recent(record.upload_id):
            if stage.of_upload_received_at(received_at):
                known.setdefault(stage.stage, stage)
        tombstone = await read_tombstone(self.gateway.services.store, record.upload_id)
        if tombstone is not None and tombstone.deletes(received_at):
            known.setdefault("deleted", StageEvent(record.upload_id, "deleted", tombstone.deleted_at.isoformat()))
        return sorted(known.values(), key=lambda stage: STAGES.index(stage.stage))

    async def _from_status(self, record: UploadRecord) -> list[StageEvent]:
        passed = [StageEvent(record.upload_id, "received", record.received_at)]
        status = self.gateway.services.status
        if status is None:
            return passed
        try:
            progress = await status.progress(record.upload_id, record.photographer_id, record.received)
        except WarehouseError as exc:
            log.warning("the past stages of %s are unknown (status store): %s", record.upload_id, exc)
            return passed
        timeline = progress.timeline
        if "processing" in timeline:
            passed.append(StageEvent(record.upload_id, "processing", timeline["processing"]))
        if "processed" in timeline:
            details = metadata_summary(progress.metadata, progress.duplicate_of)
            passed.append(StageEvent(record.upload_id, "processed", timeline["processed"], details))
        if progress.status == "completed" and "ready" in timeline:
            variants = [
                {name: variant.get(name) for name in ("name", "format", "width", "height", "bytes")}
                for variant in progress.variants
            ]
            passed.append(StageEvent(record.upload_id, "ready", timeline["ready"], {"variants": variants}))
        if progress.status == "failed" and progress.error:
            passed.append(StageEvent(record.upload_id, "failed", timeline.get("failed", ""), {"error": progress.error}))
        return passed

    # -- GET /v1/uploads/{upload_id}/events ---------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """One upload's stages as Server-Sent Events; the owner only (404 for anyone else)."""
        photographer_id = await self.gateway.photographer(request)
        record = await self._owned(photographer_id, request.match_info["upload_id"])
        if record is None:
            raise problems.not_found(f"no upload {request.match_info['upload_id']!r}")
        with self.feed.follow({record.upload_id}) as queue:
            order = _Order(record)
            past = order.past(await self._past(record), _now())
            async with sse_response(request, headers={"Cache-Control": "no-store"}) as stream:
                stages, heard = past, _now()
                while True:
                    for stage in stages:
                        await stream.send(json.dumps(stage.to_dict()), event=stage.stage, id=stage.stage)
                    if order.done:
                        break
                    try:
                        arrived = await asyncio.wait_for(queue.get(), _wait_seconds([order], heard))
                    except TimeoutError:
                        stages = order.overdue(_now())
                        if _now() - heard >= _RECHECK_SECONDS:
                            heard = _now()
                            stages += await self._recheck(order)
                    else:
                        heard = _now()
                        stages = order.arrive(arrived, heard)
            return stream

    async def _recheck(self, order: _Order) -> list[StageEvent]:
        """Nothing came for a while: ask the status too, in case a stage passed unseen (a gateway restart)."""
        stages: list[StageEvent] = []
        for stage in await self._past(order.record):
            stages += order.arrive(stage, _now())
        return stages

    # -- GET /v1/ws ------------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Many uploads' stages over one WebSocket; authenticated before the upgrade."""
        photographer_id = await self.gateway.photographer(request)
        socket = web.WebSocketResponse(heartbeat=30)
        await socket.prepare(request)
        outbox: asyncio.Queue[StageEvent | _Past | dict[str, Any]] = asyncio.Queue()
        orders: dict[str, _Order] = {}
        sending = asyncio.create_task(self._send_ws(socket, outbox, orders))
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                await self._on_ws_message(photographer_id, message.data, outbox, orders)
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
            self.feed.drop(outbox, set(orders))
        return socket

    async def _on_ws_message(
        self,
        photographer_id: str,
        data: str,
        outbox: asyncio.Queue[StageEvent | _Past | dict[str, Any]],
        orders: dict[str, _Order],
    ) -> None:
        try:
            request = json.loads(data)
            subscribe, unsubscribe = request.get("subscribe", []), request.get("unsubscribe", [])
            if not isinstance(subscribe, list) or not isinstance(unsubscribe, list):
                raise TypeError
        except (ValueError, TypeError, AttributeError):
            outbox.put_nowait({"error": "bad-request", "detail": 'send {"subscribe": [upload ids]}'})
            return
        for raw_id in unsubscribe:
            upload_id = str(raw_id)
            if orders.pop(upload_id, None) is not None:
                self.feed.drop(outbox, {upload_id})
        for raw_id in subscribe:
            record = await self._owned(photographer_id, raw_id)
            if record is None:
                outbox.put_nowait({"upload_id": str(raw_id), "error": "not-found"})
                continue
            if record.upload_id in orders:
                continue
            orders[record.upload_id] = _Order(record)
            self.feed.add(outbox, record.upload_id)  # live stages wait in the order until its past is out
            outbox.put_nowait(_Past(record.upload_id, await self._past(record)))

    async def _send_ws(
        self,
        socket: web.WebSocketResponse,
        outbox: asyncio.Queue[StageEvent | _Past | dict[str, Any]],
        orders: dict[str, _Order],
    ) -> None:
        heard = _now()
        while True:
            try:
                item = await asyncio.wait_for(outbox.get(), _wait_seconds(orders.values(), heard))
            except TimeoutError:
                for order in list(orders.values()):
                    for stage in order.overdue(_now()):
                        await self._send_ws_stage(socket, orders, outbox, order, stage)
                if _now() - heard >= _RECHECK_SECONDS:  # the whole socket was quiet, not just one upload
                    heard = _now()
                    for order in list(orders.values()):
                        for stage in await self._recheck(order):
                            await self._send_ws_stage(socket, orders, outbox, order, stage)
                continue
            heard = _now()
            if isinstance(item, dict):
                await socket.send_json(item)
                continue
            followed = orders.get(item.upload_id)
            if followed is None:
                continue
            stages = followed.past(item.stages, _now()) if isinstance(item, _Past) else followed.arrive(item, _now())
            for stage in stages:
                await self._send_ws_stage(socket, orders, outbox, followed, stage)

    async def _send_ws_stage(
        self,
        socket: web.WebSocketResponse,
        orders: dict[str, _Order],
        outbox: asyncio.Queue[Any],
        order: _Order,
        stage: StageEvent,
    ) -> None:
        await socket.send_json(stage.to_dict())
        if order.done:
            orders.pop(order.record.upload_id, None)
            self.feed.drop(outbox, {order.record.upload_id})


def _now() -> float:
    return time.monotonic()


def _wait_seconds(orders: Iterable[_Order], heard: float) -> float:
    """How long to wait for the next stage: until a held ``ready`` is due, or a recheck after quiet."""
    due = min([heard + _RECHECK_SECONDS, *(order.ready_due for order in orders if order.ready_due is not None)])
    return max(0.0, due - _now())


@dataclass(frozen=True)
class _Past:
    """The stages one upload passed before it was subscribed to, read while its live stages were held."""

    upload_id: str
    stages: list[StageEvent]


class _Order:
    """Which stages of one upload go out, and when: each once, in order, none after the final one.

    Live stages wait until the past is out (``past``). A ``ready`` that overtook ``processed`` (two
    topics, no order between them) waits up to ``_REORDER_SECONDS`` for it, then goes alone.
    """

    def __init__(self, record: UploadRecord) -> None:
        self.record = record
        self.received_at = record.received
        self.sent: set[str] = set()
        self._past_out = False
        self._early: list[StageEvent] = []  # live stages that came before the past was out
        self._ready: StageEvent | None = None
        self._ready_due = 0.0

    @property
    def done(self) -> bool:
        return bool(self.sent & FINAL_STAGES)

    @property
    def ready_due(self) -> float | None:
        """When a held ``ready`` goes alone (``overdue``); None when none is held."""
        return self._ready_due if self._ready is not None else None

    def past(self, stages: list[StageEvent], now: float) -> list[StageEvent]:
        """The stages to send first: the past, with any live ones that came meanwhile, in stage order."""
        self._past_out = True
        early, self._early = self._early, []
        out: list[StageEvent] = []
        for stage in sorted([*stages, *early], key=lambda item: STAGES.index(item.stage)):
            out += self.arrive(stage, now)
        return out

    def arrive(self, stage: StageEvent, now: float) -> list[StageEvent]:
        """The stages to send now that ``stage`` came (none, it, or it with a held ``ready``)."""
        if not self._past_out:
            self._early.append(stage)
            return []
        if stage.stage == "ready" and "processed" not in self.sent and self._ready is None:
            self._ready, self._ready_due = stage, now + _REORDER_SECONDS
            return []
        waiting = [stage]
        if self._ready is not None and stage.stage in {"processed", *FINAL_STAGES}:
            waiting.append(self._ready)
            self._ready = None
        return [item for item in sorted(waiting, key=lambda item: STAGES.index(item.stage)) if self._take(item)]

    def overdue(self, now: float) -> list[StageEvent]:
        """A held ``ready`` whose ``processed`` did not come by ``now``: it goes alone."""
        if self._ready is None or now < self._ready_due:
            return []
        ready, self._ready = self._ready, None
        return [ready] if self._take(ready) else []

    def _take(self, stage: StageEvent) -> bool:
        """Whether ``stage`` is to be sent (and note that it is); never one of an earlier upload of the photo."""
        if self.done or stage.stage in self.sent or not stage.of_upload_received_at(self.received_at):
            return False
        self.sent.add(stage.stage)
        return True
