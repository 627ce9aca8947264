"""The HTTP upload gateway (aiohttp).

    POST /v1/uploads             multipart: one or more ``file`` parts, optional ``title`` and ``tags``
    GET  /v1/uploads/{upload_id} the upload's status, for its own photographer only
    DELETE /v1/uploads/{upload_id}  cancel or delete it: original, variants, no more events (``producers.deletion``)
    GET  /v1/uploads/{upload_id}/events, GET /v1/ws   its stages as they happen (``producers.live``)
    POST /v1/uploads/direct      presigned S3 URLs; then POST /v1/uploads/{upload_id}/complete (``producers.direct``)
    /v1/tus/                     resumable uploads (tus 1.0.0, ``producers.tus``)
    GET  /healthz                the process is serving
    GET  /readyz                 Kafka and S3 answer
    GET  /metrics                Prometheus text

Every file streams to S3 while it arrives. Events are published after the whole
request is read (so ``title`` and ``tags`` may come in any order), and 202 is only
answered once every original is durable in S3 and every event is acknowledged by
Kafka. Errors are RFC 9457 problems.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from photostream.config import GatewaySettings
from photostream.http import bearer_token
from photostream.kafka_producer import PublishError
from photostream.logs import upload_context
from photostream.objectstore import Store, StoreError, StoreUnavailable
from photostream.warehouse import WarehouseError
from producers import problems
from producers.dashboard import Dashboard
from producers.deletion import UploadDeletion
from producers.direct import DirectUploads
from producers.fields import clean_filename, parse_tags, parse_title, upload_id_in
from producers.ingest import OriginalWriter, RejectedFile, StagedOriginal, stage
from producers.keys import KeyStore
from producers.ledger import UploadLedger, UploadRecord, original_key, pending_key, upload_id_for
from producers.live import LiveProgress
from producers.metrics import GatewayMetrics
from producers.originals import HeldOriginals
from producers.progress_feed import ProgressFeed
from producers.schema_routes import add_schema_routes
from producers.staging_sweep import sweep_forever
from producers.status import Progress, StatusSource
from producers.throttle import FailureLimiter
from producers.tus import TusUploads, sweep_expired
from schemas.events import UploadDeleted, UploadReceived

log = logging.getLogger(__name__)

# Read this much of a request body at a time: fewer, larger reads cost the event loop less per byte.
CHUNK_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 4096
# A request may carry this many times the files it may upload (the rest are answered one by one
# with 413), plus a few other parts (title, tags, clients' extras); beyond that it is refused whole.
PART_LIMIT_FACTOR = 10
MAX_OTHER_PARTS = 16


class Committable(Protocol):
    """A received original waiting for its key: stored there by ``commit``, or dropped by ``abort``.

    ``in_place`` says the bytes are at the original's key already (a direct upload's client put them
    there): when the event is not acknowledged they stay for the client's retry, and their pending
    marker lets the staging sweep remove them if the retry never comes.
    """

    @property
    def in_place(self) -> bool:
        """Whether the bytes are at the original's key already."""
        ...

    async def commit(self, key: str) -> None:
        """Make the bytes durable and visible at ``key``."""
        ...

    async def abort(self) -> None:
        """Drop the bytes (best effort)."""
        ...


class UploadEvents(Protocol):
    """Publishes that an upload was received or deleted (acknowledged before returning)."""

    async def publish(self, event: UploadReceived | UploadDeleted) -> None:
        """Publish ``event`` (an upload's ``published_at`` stamped at the send); PublishError if not acknowledged."""
        ...

    def reachable(self, timeout: float = 3.0) -> bool:
        """Tell whether the event bus answers (blocking)."""
        ...

    def close(self) -> None:
        """Deliver what is queued and release the connection."""
        ...


@dataclass(frozen=True)
class Services:
    """What the gateway talks to; tests may pass other implementations."""

    store: Store
    keys: KeyStore
    ledger: UploadLedger
    events: UploadEvents
    # Where an upload stands past the gateway; without it every upload reads ``queued``.
    status: StatusSource | None = None
    # The operators' charts at /dashboard; without it the page is not served.
    dashboard: Dashboard | None = None
    # Stages past the gateway as they happen, for SSE and WebSocket followers; without it those are not served.
    feed: ProgressFeed | None = None

    async def close(self) -> None:
        """Flush pending events and release connections."""
        await asyncio.to_thread(self.events.close)  # blocks until Kafka has what is queued
        await self.store.close()


@dataclass
class _Accepted:
    staged: StagedOriginal
    filename: str
    upload_id: str
    received_at: datetime
    stored_at: datetime
    in_place: bool = False


@dataclass
class _Batch:
    """Everything learned while reading one multipart request."""

    photographer_id: str
    results: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[_Accepted] = field(default_factory=list)
    rejected: list[problems.Problem] = field(default_factory=list)
    # Set when a file was refused for the daily quota: the seconds until it resets.
    quota_retry_after: int | None = None
    title: str | None = None
    tags: list[str] = field(default_factory=list)


def _status_url(upload_id: str) -> str:
    return f"/v1/uploads/{upload_id}"


def _seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


class Gateway:
    """Request handlers bound to their settings and services."""

    def __init__(self, settings: GatewaySettings, services: Services, metrics: GatewayMetrics) -> None:
        """Keep the settings, the services and the metrics."""
        self.settings = settings
        self.services = services
        self.metrics = metrics
        # Originals stored by requests of this process that have not settled yet.
        self.originals = HeldOriginals()
        self.auth_failures = FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window_seconds)

    # -- authentication -------------------------------------------------------------

    async def photographer(self, request: web.Request) -> str:
        """The photographer whose API key the request carries; 401 (or 429 after many failures) otherwise."""
        api_key = bearer_token(request)
        wait = self.auth_failures.retry_after(request.remote)
        if wait is not None:
            # A client that keeps failing may still use a key this process knows to be valid
            # (others behind the same address); nothing it sends reaches S3 until it waits.
            known = self.services.keys.known(api_key) if api_key else None
            if known is None:
                raise problems.too_many_auth_failures(
                    f"too many requests with a missing or unknown API key from this address; retry in {wait} seconds",
                    wait,
                )
            return known.photographer_id
        if api_key is None:
            self.auth_failures.failed(request.remote)
            raise problems.unauthorized("send `Authorization: Bearer <api key>`")
        record = await self.services.keys.lookup(api_key)
        if record is None:
            self.auth_failures.failed(request.remote)
            raise problems.unauthorized("the API key is not known")
        return record.photographer_id

    # -- POST /v1/uploads -----------------------------------------------------------

    async def create_uploads(self, request: web.Request) -> web.Response:
        """Accept one or more files; see the module docstring."""
        photographer_id = await self.photographer(request)
        with upload_context(photographer_id=photographer_id):
            return await self._create_uploads(request, photographer_id)

    async def refuse_over_quota(self, photographer_id: str) -> None:
        """Raise 429 when the photographer has used every upload of the day."""
        now = datetime.now(UTC)
        if await self.services.ledger.accepted_today(photographer_id, now) >= self.settings.daily_quota:
            self.metrics.rejections.labels("quota").inc()
            raise problems.too_many_requests(
                f"{photographer_id} reached the daily quota of {self.settings.daily_quota} uploads",
                _seconds_to_midnight(now),
            )

    async def _create_uploads(self, request: web.Request, photographer_id: str) -> web.Response:
        await self.refuse_over_quota(photographer_id)
        if not request.content_type.startswith("multipart/form-data"):
            raise problems.bad_request("the body must be multipart/form-data with one or more `file` parts")
        try:
            reader = await request.multipart()
        except (ValueError, AssertionError) as exc:
            raise problems.bad_request(f"malformed multipart body: {exc}") from exc

        batch = _Batch(photographer_id)
        try:
            await self._read_parts(reader, batch)
        except ValueError as exc:  # aiohttp's multipart parser on a broken body
            await self._abandon(batch)
            raise problems.bad_request(f"malformed multipart body: {exc}") from exc
        except BaseException:
            await self._abandon(batch)
            raise
        if not batch.results:
            raise problems.bad_request("no `file` part in the request")
        await self._publish(batch)
        return self._batch_response(batch)

    async def accept_one(
        self,
        photographer_id: str,
        staged: StagedOriginal,
        original: Committable,
        *,
        raw_name: str | None,
        received_at: datetime,
        title: str | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Admit and publish one file received some other way than a POST (tus, direct).

        Returns:
            Its entry as ``POST /v1/uploads`` lists it (``upload_id``, ``status_url``, ``existing``).

        Raises:
            ProblemError: It was refused (the daily quota), as a POST of it would answer.
        """
        batch = _Batch(photographer_id, title=title, tags=tags or [])
        await self._admit(batch, staged, original, raw_name=raw_name, received_at=received_at)
        await self._publish(batch)
        if batch.rejected:
            headers = {"Retry-After": str(batch.quota_retry_after)} if batch.quota_retry_after else None
            raise problems.ProblemError(batch.rejected[0], headers)
        return batch.results[0]

    async def _read_parts(self, reader: MultipartReader, batch: _Batch) -> None:
        files = parts = 0
        while True:
            part = await self._with_timeout(reader.next())
            if part is None:
                return
            parts += 1
            if parts > PART_LIMIT_FACTOR * self.settings.max_files_per_request + MAX_OTHER_PARTS:
                # Files past the limit are answered one by one, up to a point; a flood is refused whole.
                raise problems.bad_request(f"more than {parts - 1} parts in one request")
            if not isinstance(part, BodyPartReader):
                raise problems.bad_request("nested multipart bodies are not accepted")
            if part.name == "file":
                files += 1
                if files > self.settings.max_files_per_request:
                    await self._drain(part)
                    self._reject(batch, part.filename, problems.too_many_files(self.settings.max_files_per_request))
                    continue
                if await self._quota_used_up(batch):
                    # Not even read into S3: every slot of the day is taken (by this request or others).
                    await self._drain(part)
                    self._reject_over_quota(batch, part.filename)
                    continue
                await self._receive_file(part, batch)
            elif part.name == "title":
                batch.title = parse_title(await self._read_field(part))
            elif part.name == "tags":
                batch.tags = parse_tags(await self._read_field(part))
            else:
                await self._drain(part)

    async def _with_timeout(self, awaitable: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self.settings.read_timeout):
                return await awaitable
        except TimeoutError as exc:
            raise problems.ProblemError(
                problems.Problem("request-timeout", 408, "Request timeout", "the client stopped sending")
            ) from exc

    async def _chunks(self, part: BodyPartReader) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._with_timeout(part.read_chunk(CHUNK_BYTES))
            if not chunk:
                return
            yield chunk

    async def _drain(self, part: BodyPartReader) -> None:
        async for _ in self._chunks(part):
            pass

    async def _read_field(self, part: BodyPartReader) -> str:
        data = bytearray()
        async for chunk in self._chunks(part):
            data += chunk
            if len(data) > MAX_FIELD_BYTES:
                raise problems.bad_request(f"the `{part.name}` field is over {MAX_FIELD_BYTES} bytes")
        return data.decode("utf-8", errors="replace")

    async def _quota_used_up(self, batch: _Batch) -> bool:
        used = await self.services.ledger.accepted_today(batch.photographer_id, datetime.now(UTC))
        return used >= self.settings.daily_quota

    def _reject_over_quota(self, batch: _Batch, raw_name: str | None) -> None:
        batch.quota_retry_after = _seconds_to_midnight(datetime.now(UTC))
        problem = problems.over_quota(clean_filename(raw_name), batch.photographer_id, self.settings.daily_quota)
        self._reject(batch, raw_name, problem)

    def _reject(self, batch: _Batch, raw_name: str | None, problem: problems.Problem) -> None:
        self.metrics.files.labels("rejected").inc()
        self.metrics.rejections.labels(problem.code).inc()
        batch.rejected.append(problem)
        batch.results.append({"filename": clean_filename(raw_name), "status": "rejected", "problem": problem.to_dict()})

    def rejection_problem(self, rejection: RejectedFile, filename: str) -> problems.Problem:
        """The problem that answers a file refused for its bytes."""
        return {
            "too_large": problems.file_too_large(filename, self.settings.max_file_bytes),
            "unsupported": problems.unsupported_media(filename),
            "empty": problems.empty_file(filename),
        }[rejection.reason]

    async def _receive_file(self, part: BodyPartReader, batch: _Batch) -> None:
        filename = clean_filename(part.filename)
        received_at = datetime.now(UTC)
        writer = OriginalWriter(
            self.services.store,
            part_bytes=self.settings.part_bytes,
            max_bytes=self.settings.max_file_bytes,
            spool_dir=self.settings.spool_dir,
        )
        try:
            staged = await stage(writer, self._chunks(part))
        except RejectedFile as rejection:
            await self._drain(part)
            self._reject(batch, part.filename, self.rejection_problem(rejection, filename))
            return
        await self._admit(batch, staged, writer, raw_name=part.filename, received_at=received_at)

    async def _admit(
        self,
        batch: _Batch,
        staged: StagedOriginal,
        original: Committable,
        *,
        raw_name: str | None,
        received_at: datetime,
    ) -> None:
        """Take a fully received file into ``batch``: answer the existing image, refuse it, or store it.

        Every way in (a multipart POST, a finished tus or direct upload) comes through here, so the same
        content gets the same ``upload_id``, quota and answer whichever way it came.
        """
        filename = clean_filename(raw_name)
        upload_id = upload_id_for(batch.photographer_id, staged.sha256)
        with upload_context(upload_id=upload_id):
            twin = next((item for item in batch.accepted if item.upload_id == upload_id), None)
            existing = twin is None and await self.services.ledger.find(upload_id)
            if twin or existing:
                # The same photo again: answer with the image that exists, store nothing new.
                await original.abort()
                self.metrics.files.labels("duplicate").inc()
                log.info("%s (%d bytes) was uploaded before: nothing new stored", filename, staged.size)
                batch.results.append(
                    {
                        "upload_id": upload_id,
                        "filename": filename,
                        "status": "queued",
                        "status_url": _status_url(upload_id),
                        "existing": True,
                    }
                )
                return
            quota = self.settings.daily_quota
            if not await self.services.ledger.reserve(batch.photographer_id, upload_id, received_at, quota):
                # Another request took the last slot while this file was arriving.
                await original.abort()
                self._reject_over_quota(batch, raw_name)
                return
            try:
                await self._store_original(original, batch.photographer_id, upload_id)
            except BaseException:
                self.services.ledger.release(batch.photographer_id, upload_id, received_at)
                raise
            self.metrics.bytes_received.inc(staged.size)
            self.metrics.files.labels("accepted").inc()
            batch.accepted.append(
                _Accepted(staged, filename, upload_id, received_at, datetime.now(UTC), in_place=original.in_place)
            )
            batch.results.append(
                {"upload_id": upload_id, "filename": filename, "status": "queued", "status_url": _status_url(upload_id)}
            )

    def _release(self, batch: _Batch) -> None:
        """Give back the quota slots of files that will not be saved."""
        for item in batch.accepted:
            self.services.ledger.release(batch.photographer_id, item.upload_id, item.received_at)

    async def _abandon(self, batch: _Batch) -> None:
        """The request failed midway: delete originals that no event will ever refer to."""
        self._release(batch)
        for item in batch.accepted:
            await self._settle_failed(batch.photographer_id, item)

    async def _store_original(self, original: Committable, photographer_id: str, upload_id: str) -> None:
        """Commit the original at its key (the same for every attempt at this photo); on failure, discard it.

        Its pending marker goes first: a gateway killed before the upload is acknowledged or discarded leaves
        the marker, and the staging sweep deletes the original it names unless the upload was acknowledged.
        """
        key = original_key(photographer_id, upload_id)

        async def mark_then_commit() -> None:
            if not original.in_place:  # an original put in place was marked before its bytes could arrive
                await self.services.store.put(pending_key(photographer_id, upload_id), b"", content_type="text/plain")
            await original.commit(key)

        try:
            await self.originals.store(upload_id, mark_then_commit)
        except BaseException:
            if original.in_place:
                self.originals.release(upload_id)
            else:
                await self._discard(photographer_id, upload_id)
            raise

    async def acknowledged(self, upload_id: str) -> bool:
        """Whether the upload's event was acknowledged (its record is in the ledger)."""
        return await self.services.ledger.find(upload_id) is not None

    async def _unmark(self, photographer_id: str, upload_id: str) -> None:
        """Remove the pending marker of an upload that was acknowledged or discarded (the sweep does it otherwise)."""
        try:
            await self.services.store.delete(pending_key(photographer_id, upload_id))
        except StoreError as exc:
            log.warning("could not remove the pending marker of %s: %s", upload_id, exc)

    async def _settle_failed(self, photographer_id: str, item: _Accepted) -> None:
        """End the hold of an upload whose event was not acknowledged: discard its original, or keep one in place."""
        if item.in_place:
            self.originals.release(item.upload_id)  # the client's retry publishes it; else the sweep removes it
        else:
            await self._discard(photographer_id, item.upload_id)

    async def _discard(self, photographer_id: str, upload_id: str) -> None:
        """Delete an original whose event was not acknowledged, unless it is someone else's too.

        It stays when another request of this process holds it, and when the upload was
        acknowledged before (a record exists): an acknowledged original is never deleted.
        """
        key = original_key(photographer_id, upload_id)

        async def delete_unless_acknowledged() -> None:
            if not await self.acknowledged(upload_id):
                await self.services.store.delete(key)
            await self._unmark(photographer_id, upload_id)

        with upload_context(upload_id=upload_id, photographer_id=photographer_id):
            try:
                await self.originals.discard(upload_id, delete_unless_acknowledged)
            except StoreError as exc:
                # A retry of the same photo writes the same key, so this is not stored twice.
                log.warning("could not delete original %s of an unpublished upload: %s", key, exc)

    async def _publish(self, batch: _Batch) -> None:
        """Publish the events of the originals ``batch`` stored; on failure their quota slots are given back."""
        try:
            await self._publish_events(batch)
        except BaseException:
            self._release(batch)
            raise

    async def _publish_events(self, batch: _Batch) -> None:
        # Built once: the event is what Kafka gets, and the ledger's record is read off it.
        events = [
            UploadReceived(
                upload_id=uuid.UUID(item.upload_id),
                photographer_id=batch.photographer_id,
                filename=item.filename,
                content_type=item.staged.content_type,
                bytes=item.staged.size,
                sha256=item.staged.sha256,
                bucket=self.services.store.bucket,
                original_key=original_key(batch.photographer_id, item.upload_id),
                title=batch.title,
                tags=tuple(batch.tags),
                received_at=item.received_at,
                stored_at=item.stored_at,
                published_at=item.stored_at,  # stamped again by the publisher at the send
                gateway_id=self.settings.instance_id,
            )
            for item in batch.accepted
        ]
        records = [UploadRecord.of(event) for event in events]
        try:
            # True: published; False: a concurrent request of this gateway published the same photo.
            outcomes = await asyncio.gather(*(self._publish_once(event) for event in events), return_exceptions=True)
        except BaseException:  # cancelled: no event is known to be acknowledged
            await self._abandon(batch)
            raise
        published = [record for record, outcome in zip(records, outcomes, strict=True) if outcome is True]
        twins = {item.upload_id for item, outcome in zip(batch.accepted, outcomes, strict=True) if outcome is False}
        try:
            # Event first, then the record: a record always means an acknowledged event, so a
            # retry after a failed publish publishes again instead of trusting a lost event.
            await asyncio.gather(*(self.services.ledger.save(record) for record in published))
        finally:
            for upload_id in [*(record.upload_id for record in published), *twins]:
                self.originals.release(upload_id)
                if self.originals.holders(upload_id) == 0:
                    await self._unmark(batch.photographer_id, upload_id)
            for item, outcome in zip(batch.accepted, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    await self._settle_failed(batch.photographer_id, item)
        for record in published:
            with upload_context(upload_id=record.upload_id):
                log.info("accepted %s (%d bytes, %s)", record.filename, record.bytes, record.content_type)
        for result in batch.results:
            if result.get("upload_id") in twins and not result.get("existing"):
                result["existing"] = True
                with upload_context(upload_id=result["upload_id"]):
                    log.info("%s arrived twice at once: published once", result["filename"])
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _publish_once(self, event: UploadReceived) -> bool:
        """Publish ``event`` unless a concurrent request of this gateway published the same upload."""
        upload_id = str(event.upload_id)
        return await self.originals.publish_once(
            upload_id, lambda: self.services.events.publish(event), lambda: self.acknowledged(upload_id)
        )

    def _batch_response(self, batch: _Batch) -> web.Response:
        body: dict[str, Any] = {"uploads": batch.results}
        if not batch.rejected:
            return web.json_response(body, status=202)
        # Files refused for the quota may be sent again at midnight UTC.
        headers = {"Retry-After": str(batch.quota_retry_after)} if batch.quota_retry_after else None
        if len(batch.results) == 1:
            problem = batch.rejected[0]
            return problems.Problem(problem.code, problem.status, problem.title, problem.detail, body).response(headers)
        if len(batch.rejected) == len(batch.results):
            statuses = {problem.status for problem in batch.rejected}
            status = statuses.pop() if len(statuses) == 1 else 400
            return problems.Problem(
                "all-files-rejected", status, "No file was accepted", "every file was rejected; see uploads", body
            ).response(headers)
        return web.json_response(body, status=207, headers=headers)

    # -- GET /v1/uploads/{upload_id} -------------------------------------------------

    async def get_upload(self, request: web.Request) -> web.Response:
        """The upload's status; another photographer's upload is a 404 like a missing one."""
        photographer_id = await self.photographer(request)
        upload_id = upload_id_in(request)
        record = await self.services.ledger.find(upload_id)
        if record is None or record.photographer_id != photographer_id:
            raise problems.not_found(f"no upload {upload_id}")
        progress = Progress(status="queued")
        if self.services.status is not None:
            with upload_context(upload_id=upload_id, photographer_id=photographer_id):
                try:
                    received_at = record.received
                    progress = await self.services.status.progress(upload_id, photographer_id, received_at)
                except WarehouseError as exc:
                    log.warning("status of %s unavailable: %s", upload_id, exc)
                    raise problems.unavailable(
                        "the pipeline's status store does not answer", self.settings.retry_after_seconds
                    ) from exc
        body: dict[str, Any] = {
            "upload_id": record.upload_id,
            "photographer_id": record.photographer_id,
            "filename": record.filename,
            "status": progress.status,
            "content_type": record.content_type,
            "bytes": record.bytes,
            "sha256": record.sha256,
            "title": record.title,
            "tags": record.tags,
            "received_at": record.received_at,
        }
        if progress.status == "completed":
            body["metadata"] = progress.metadata
            body["variants"] = [self._presigned(variant) for variant in progress.variants]
        if progress.duplicate_of:
            body["duplicate_of"] = progress.duplicate_of
        if progress.error:
            body["error"] = progress.error
        return web.json_response(body)

    def _presigned(self, variant: dict[str, Any]) -> dict[str, Any]:
        # Variant objects stay private: clients get a URL that expires.
        visible = {name: value for name, value in variant.items() if name != "key"}
        visible["url"] = self.services.store.presign_get(variant["key"], self.settings.presigned_url_seconds)
        visible["url_expires_in"] = self.settings.presigned_url_seconds
        return visible

    # -- health and metrics ------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        """The process serves requests."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Kafka and S3 both answer; 503 naming what does not."""

        async def s3_ok() -> bool:
            try:
                await self.services.store.ping()
            except StoreError:
                return False
            return True

        s3, kafka = await asyncio.gather(s3_ok(), asyncio.to_thread(self.services.events.reachable, 3.0))
        checks = {"s3": "ok" if s3 else "unreachable", "kafka": "ok" if kafka else "unreachable"}
        if s3 and kafka:
            return web.json_response({"status": "ready", "checks": checks})
        return problems.Problem(
            "not-ready", 503, "Not ready", "a dependency does not answer", {"checks": checks}
        ).response({"Retry-After": str(self.settings.retry_after_seconds)})

    async def metrics_text(self, request: web.Request) -> web.Response:
        """Prometheus exposition."""
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_middleware(gateway: Gateway) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        try:
            response = await handler(request)
        except problems.ProblemError as error:
            gateway.metrics.rejections.labels(error.problem.code).inc()
            response = error.problem.response(error.headers)
        except (StoreUnavailable, PublishError) as exc:
            log.warning("dependency unavailable on %s: %s", route, exc)
            gateway.metrics.rejections.labels("unavailable").inc()
            unavailable = problems.unavailable(str(exc), gateway.settings.retry_after_seconds)
            response = unavailable.problem.response(unavailable.headers)
        except StoreError as exc:
            log.error("object store refused on %s: %s", route, exc)
            response = problems.Problem("internal", 500, "Internal error", "the object store refused").response()
        except HttpProcessingError as exc:
            # aiohttp's parsers refuse malformed multipart headers (a NUL in a filename, ...).
            gateway.metrics.rejections.labels("bad-request").inc()
            detail = f"malformed request: {exc.message or type(exc).__name__}"
            response = problems.Problem("bad-request", 400, "Malformed request", detail).response()
        except web.HTTPException as exc:
            response = problems.Problem(
                exc.reason.lower().replace(" ", "-"), exc.status, exc.reason, exc.text or exc.reason
            ).response()
        gateway.metrics.requests.labels(request.method, route, str(response.status)).inc()
        gateway.metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    return middleware


def create_app(settings: GatewaySettings, services: Services, metrics: GatewayMetrics | None = None) -> web.Application:
    """Build the gateway's aiohttp application around its services."""
    gateway = Gateway(settings, services, metrics or GatewayMetrics())
    app = web.Application(middlewares=[_error_middleware(gateway)], client_max_size=MAX_FIELD_BYTES * 4)
    app.router.add_post("/v1/uploads", gateway.create_uploads)
    DirectUploads(gateway).add_routes(app)
    if services.feed is not None:
        LiveProgress(gateway, services.feed).add_routes(app)
    app.router.add_get("/v1/uploads/{upload_id}", gateway.get_upload)
    UploadDeletion(gateway).add_routes(app)
    if services.dashboard is not None:
        app.router.add_get("/dashboard", services.dashboard.page)
        app.router.add_get("/dashboard/data", services.dashboard.data_json)
    TusUploads(gateway).add_routes(app)
    add_schema_routes(app)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/metrics", gateway.metrics_text)

    async def close_services(_: web.Application) -> None:
        if services.status is not None:
            await services.status.close()
        await services.close()

    async def sweep_staging(_: web.Application) -> AsyncIterator[None]:
        if not settings.staging_sweep_seconds:
            yield
            return
        older_than = timedelta(seconds=settings.staging_max_age_seconds)
        sweeping = asyncio.create_task(
            sweep_forever(
                services.store,
                every=settings.staging_sweep_seconds,
                older_than=older_than,
                acknowledged=gateway.acknowledged,
                also=functools.partial(sweep_expired, services.store, older_than=older_than),
            )
        )
        yield
        sweeping.cancel()
        try:
            await sweeping
        except asyncio.CancelledError:
            pass
        except Exception:  # a sweep cut short by the shutdown (its store closed under it) must not fail it
            log.warning("the staging sweep ended with an error at shutdown", exc_info=True)

    app.cleanup_ctx.append(sweep_staging)
    app.on_cleanup.append(close_services)
    return app
